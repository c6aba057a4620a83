"""A BM25 index folder: its settings, its manifest, and the streaming, parallel build.

The index holds compact postings (:mod:`searchprime.search._bm25_postings`: term frequencies
and 3-byte doc ids, Lucene scoring at query time), ``vocab.index.json``, a compressed document
store (:mod:`searchprime.search._docstore`) and ``searchprime_index.json``;
:class:`~searchprime.search.bm25.BM25Search` reads it. Format 1 (bm25s's layout of float32
scores and an uncompressed store) is refused with a message to rebuild.

Build (why not ``bm25s.BM25.index``): bm25s holds the whole corpus and its token lists in
memory and tokenizes on one thread (100 s and 3.8 GiB at 1M passages). Here worker processes
(:mod:`searchprime.search._bm25_build`) tokenize blocks of raw lines (each distinct word stemmed
once), the parent merges block vocabularies and spills (doc, term, tf) triples to disk, then a
second pass scatters them into the CSC columns with a numba kernel. Workers also compress each
document (zstd, against a dictionary the parent trains on the first block). Peak memory is the
vocabulary, the per-document arrays and a few blocks; the postings and the document store are
streamed to disk.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from searchprime.errors import ConfigError, RecordError
from searchprime.search._bm25_build import (
    Block,
    BlockResult,
    init_worker,
    sample_docs,
    tokenize_block,
)
from searchprime.search._bm25_postings import MAXSCORE, write_postings
from searchprime.search._docstore import DocStoreWriter, train_dictionary
from searchprime.search.corpus import is_parquet, iter_parquet_rows, open_binary

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MAXSCORE",
    "BM25Config",
    "build_bm25_index",
    "read_manifest",
    "usable_cpus",
]

MANIFEST = "searchprime_index.json"
FORMAT_VERSION = 2  # 2: compact postings, compressed document store (1: bm25s layout)
DICT_SAMPLE_BYTES = 4 << 20  # corpus bytes the document store's zstd dictionary is trained on


class BM25Config(BaseModel):
    """How to analyse text and score with BM25 (Lucene variant)."""

    model_config = ConfigDict(extra="forbid")

    k1: float = Field(default=0.9, gt=0, description="Term-frequency saturation.")
    b: float = Field(default=0.4, ge=0, le=1, description="Length normalisation.")
    stemmer: str | None = Field(
        default="english", description="PyStemmer algorithm name, or null for no stemming."
    )
    stopwords: Literal["en"] | list[str] | None = Field(
        default="en", description="'en' (Lucene's English list, as in bm25s), a list, or null."
    )
    workers: int | None = Field(
        default=None, ge=1, description="Tokenizer processes for the build (default: CPU count)."
    )
    block_bytes: int = Field(
        default=1 << 20,
        ge=1 << 12,
        description="Bytes of JSONL per tokenizer block (a worker holds ~50x this at its peak: "
        "1 MiB builds as fast as 4 MiB with 40% less memory).",
    )


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    """The ``searchprime_index.json`` of an index folder (kind, config, counts)."""
    path = Path(index_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{index_dir}: not a searchprime index (no {MANIFEST})") from None


def _blocks(path: Path, block_bytes: int) -> Iterator[Block]:
    if is_parquet(path):
        rows: list[tuple[int, Any]] = []
        for row in iter_parquet_rows(path):
            rows.append(row)
            if len(rows) >= 4096:
                yield Block(str(path), rows[0][0], rows=rows)
                rows = []
        if rows:
            yield Block(str(path), rows[0][0], rows=rows)
        return
    line = 1
    carry = b""
    with open_binary(path) as fh:
        while True:
            chunk = fh.read(block_bytes)
            if not chunk:
                break
            chunk = carry + chunk
            cut = chunk.rfind(b"\n")
            if cut < 0:
                carry = chunk
                continue
            data, carry = chunk[:cut], chunk[cut + 1 :]
            yield Block(str(path), line, data=data)
            line += data.count(b"\n") + 1
    if carry.strip():
        yield Block(str(path), line, data=carry)


def _map_blocks(
    path: Path, cfg: BM25Config, skip_bad: bool, workers: int, dictionary: bytes
) -> Iterator[BlockResult]:
    blocks = _blocks(path, cfg.block_bytes)
    args = (cfg.stemmer, cfg.stopwords, skip_bad, dictionary)
    if workers <= 1:
        init_worker(*args)
        yield from map(tokenize_block, blocks)
        return
    # fork where available: "spawn" re-runs the caller's __main__ in every worker, which breaks
    # scripts without an `if __name__ == "__main__"` guard. Workers only tokenize (no locks of
    # the parent's threads are needed), so forking a threaded parent is safe here.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pool = ctx.Pool(workers, initializer=init_worker, initargs=args)
    with pool:
        yield from pool.imap(tokenize_block, blocks, chunksize=1)


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_bm25_index(
    corpus_path: str | Path,
    out_dir: str | Path,
    config: BM25Config | None = None,
    *,
    skip_bad: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Build a BM25 index of ``corpus_path`` into ``out_dir`` (created); returns ``out_dir``.

    ``progress(n)`` is called with the number of documents added after each block. Bad
    records raise :class:`RecordError`, or with ``skip_bad`` are skipped and counted in the
    manifest (``skipped``).
    """
    cfg = config or BM25Config()
    corpus_path = Path(corpus_path)
    out = Path(out_dir)
    if not corpus_path.exists():
        raise RecordError(corpus_path, None, "<file>", "corpus file not found")
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".build"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    workers = cfg.workers or usable_cpus()
    if corpus_path.stat().st_size < 2 * cfg.block_bytes:
        workers = 1  # not worth starting processes
    store = DocStoreWriter(out)
    # the dictionary learns from the first DICT_SAMPLE_BYTES, whatever the block size
    first = next(_blocks(corpus_path, max(cfg.block_bytes, DICT_SAMPLE_BYTES)), None)
    dictionary = train_dictionary(sample_docs(first)) if first is not None else b""
    del first
    store.set_dictionary(dictionary)
    vocab: dict[str, int] = {}
    worker_maps: dict[int, np.ndarray] = {}
    df = np.zeros(1 << 16, dtype=np.int64)
    doc_lens: list[np.ndarray] = []
    n_docs = 0
    nnz = 0
    max_tf = 0
    skipped = 0
    examples: list[str] = []
    spill = [(tmp / name).open("wb") for name in ("doc.i32", "term.i32", "tf.u16")]
    try:
        for res in _map_blocks(corpus_path, cfg, skip_bad, workers, dictionary):
            if res.error is not None:
                raise RecordError(*res.error)
            skipped += len(res.skipped)
            examples.extend(f"{p}:{ln}: {f}: {m}" for p, ln, f, m in res.skipped[:3])
            if not res.n_docs:
                continue
            wmap = worker_maps.setdefault(res.pid, np.zeros(0, np.int32))
            if len(wmap) != res.stem_base:
                raise RuntimeError("bm25 build: worker vocabulary out of order")  # not expected
            new = np.fromiter(
                (vocab.setdefault(s, len(vocab)) for s in res.new_stems),
                np.int32,
                len(res.new_stems),
            )
            gid = worker_maps[res.pid] = np.concatenate([wmap, new])
            term = gid[res.pair_term]
            if len(vocab) > len(df):
                df = np.concatenate(
                    [df, np.zeros(max(len(vocab), 2 * len(df)) - len(df), np.int64)]
                )
            df += np.bincount(term, minlength=len(df))
            spill[0].write((res.pair_doc + n_docs).astype(np.int32).tobytes())
            spill[1].write(term.tobytes())
            spill[2].write(res.pair_tf.tobytes())
            store.write_frames(res.frames, res.frame_lengths)
            max_tf = max(max_tf, int(res.pair_tf.max(initial=0)))
            doc_lens.append(res.doc_lens)
            n_docs += res.n_docs
            nnz += len(term)
            if progress is not None:
                progress(res.n_docs)
    finally:
        for fh in spill:
            fh.close()
        store.close()
    if n_docs == 0:
        raise RecordError(corpus_path, None, "<file>", "no documents in the corpus")

    lens = np.concatenate(doc_lens).astype(np.float32)
    del doc_lens
    df = df[: len(vocab)]
    avgdl = float(lens.mean()) or 1.0
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    norm = (cfg.k1 * (1.0 - cfg.b + cfg.b * lens / avgdl)).astype(np.float32)
    del lens
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    write_postings(tmp, out, nnz, indptr, idf, norm, max_tf)
    shutil.rmtree(tmp, ignore_errors=True)

    (out / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    manifest = {
        "kind": "bm25",
        "format_version": FORMAT_VERSION,
        "config": cfg.model_dump(),
        "corpus": str(corpus_path),
        "num_docs": n_docs,
        "vocab_size": len(vocab),
        "nnz": nnz,
        "avgdl": avgdl,
        "skipped": skipped,
        "skipped_examples": examples[:10],
        "build_seconds": round(time.perf_counter() - t0, 3),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out
