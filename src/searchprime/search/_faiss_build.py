"""Build a FAISS index from an embeddings ``.npy`` in shards, and open it memory-mapped.

The float vectors are never all in memory: a trained kind is trained on a sample of
``train_size`` rows, then rows are read and added ``shard_size`` at a time. IVF kinds add each
shard to its own copy of the trained index, written to disk, and FAISS merges the inverted lists
into one on-disk file (``faiss.ivfdata``, :func:`faiss.contrib.ondisk.merge_ondisk`), so their
peak memory is one shard whatever N is. Flat and HNSW kinds hold their codes (and graph) in
memory while building, one shard of floats at a time on top.

Loading maps the files (``IO_FLAG_MMAP_IFC``; on-disk lists are mapped by FAISS itself), so
several processes opening one index share the page cache.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from searchprime._lazy import require
from searchprime.search._faiss_kinds import IVF_KINDS, IndexSpec, index_spec
from searchprime.search._faiss_vectors import npy_shape, read_rows, read_sample

if TYPE_CHECKING:
    from searchprime.search.dense import DenseConfig

__all__ = ["INDEX_FILE", "IVF_DATA", "build_faiss", "read_faiss"]

INDEX_FILE = "faiss.index"
IVF_DATA = "faiss.ivfdata"


def build_faiss(
    embeddings: str | Path,
    out_dir: str | Path,
    cfg: DenseConfig,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/faiss.index`` (and ``faiss.ivfdata`` for IVF kinds) over the rows of
    ``embeddings``; returns what the manifest records (kind, factory, sizes, timings)."""
    faiss = require("faiss", "dense")
    out = Path(out_dir)
    n, dim, _ = npy_shape(embeddings)
    spec = index_spec(cfg, n, dim)
    t0 = time.perf_counter()
    index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if spec.hnsw_m is not None:
        index.hnsw.efConstruction = cfg.ef_construction
    if spec.kind == "opq_ivf_pq":
        faiss.downcast_VectorTransform(index.chain.at(0)).niter = cfg.opq_niter
    if not index.is_trained:
        index.train(read_sample(embeddings, spec.train_size, seed=cfg.seed))
    train_s = time.perf_counter() - t0
    for stale in (out / INDEX_FILE, out / IVF_DATA):
        stale.unlink(missing_ok=True)
    if spec.kind in IVF_KINDS:
        _add_ivf_ondisk(faiss, index, embeddings, out, spec, cfg.shard_size, progress)
    else:
        for start in range(0, n, cfg.shard_size):
            shard = read_rows(embeddings, start, start + cfg.shard_size)
            index.add(shard)
            if progress is not None:
                progress(len(shard))
    faiss.write_index(index, str(out / INDEX_FILE))
    return {
        **spec.info(),
        "num_docs": n,
        "dim": dim,
        "shard_size": cfg.shard_size,
        "train_seconds": round(train_s, 3),
        "index_seconds": round(time.perf_counter() - t0, 3),
    }


def _add_ivf_ondisk(
    faiss: Any,
    trained: Any,
    embeddings: str | Path,
    out: Path,
    spec: IndexSpec,
    shard_size: int,
    progress: Callable[[int], None] | None,
) -> None:
    import numpy as np
    from faiss.contrib.ondisk import merge_ondisk

    shards: list[str] = []
    try:
        for start in range(0, spec.num_docs, shard_size):
            vecs = read_rows(embeddings, start, start + shard_size)
            part = faiss.clone_index(trained)
            part.add_with_ids(vecs, np.arange(start, start + len(vecs), dtype=np.int64))
            shards.append(str(out / f"faiss.shard{len(shards)}.index"))
            faiss.write_index(part, shards[-1])
            del part, vecs
            if progress is not None:
                progress(min(shard_size, spec.num_docs - start))
        with _quiet_stdout():
            merge_ondisk(trained, shards, str((out / IVF_DATA).resolve()))
    finally:
        for name in shards:
            Path(name).unlink(missing_ok=True)


def read_faiss(index_dir: str | Path) -> Any:
    """Open ``index_dir/faiss.index`` memory-mapped and read-only (plain read as a fallback
    for index types FAISS cannot map)."""
    faiss = require("faiss", "dense")
    path = str(Path(index_dir) / INDEX_FILE)
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_ONDISK_SAME_DIR
    with _quiet_stdout():
        try:
            return faiss.read_index(path, flags)
        except RuntimeError:
            return faiss.read_index(path, faiss.IO_FLAG_ONDISK_SAME_DIR)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence FAISS's C-level prints about on-disk lists ("resizing ...", "updating ondisk
    filename ..."): they would land in the middle of ``index query --json`` output."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
