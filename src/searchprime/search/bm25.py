"""BM25 over a corpus file: a streaming, parallel build and a memory-mapped, batched searcher.

The index holds compact postings (term frequencies and 3-byte doc ids, Lucene scoring with
``k1=0.9, b=0.4`` by default; :mod:`searchprime.search._bm25_postings`), a zstd-compressed
document store and ``searchprime_index.json``, all memory-mapped when loaded.

Build: :func:`build_bm25_index` (:mod:`searchprime.search._bm25_index`, which says why not
``bm25s.BM25.index``) tokenizes and compresses in worker processes and streams the postings and
documents to disk.

Search: queries are tokenized like the corpus and scored by the nogil numba kernel in
:mod:`searchprime.search._bm25_kernels`, a batch split over ``threads`` threads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from searchprime.errors import ConfigError
from searchprime.records import SearchHit
from searchprime.search._batch import MicroBatcher
from searchprime.search._bm25_index import (
    FORMAT_VERSION,
    MANIFEST,
    BM25Config,
    build_bm25_index,
    read_manifest,
    usable_cpus,
)
from searchprime.search._bm25_postings import Postings
from searchprime.search._docstore import DocStore
from searchprime.search._text import Tokenizer

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "BM25Config",
    "BM25Search",
    "build_bm25_index",
    "read_manifest",
]


class BM25Search:
    """A loaded BM25 index; implements :class:`~searchprime.search.base.SearchBackend`."""

    name = "bm25"

    def __init__(
        self,
        index_dir: Path,
        postings: Postings,
        vocab: dict[str, int],
        store: DocStore,
        manifest: dict[str, Any],
        threads: int,
    ):
        self.index_dir = index_dir
        self.postings = postings
        self.vocab = vocab
        self.store = store
        self.manifest = manifest
        self.config = BM25Config(**manifest["config"])
        self.num_docs = int(manifest["num_docs"])
        self.threads = max(1, threads)
        self._tokenizer = Tokenizer(self.config.stemmer, self.config.stopwords)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="bm25")
        self._batcher: MicroBatcher[SearchHit] = MicroBatcher(self.search_sync)

    @classmethod
    def load(
        cls, index_dir: str | Path, *, threads: int | None = None, mmap: bool = True
    ) -> BM25Search:
        """Open an index built by :func:`build_bm25_index` (arrays memory-mapped by default)."""
        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        if manifest.get("kind") != "bm25":
            raise ConfigError(f"{index_dir}: a {manifest.get('kind')!r} index, not bm25")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{index_dir}: index format {manifest.get('format_version')} is not "
                f"{FORMAT_VERSION}; rebuild it with `searchprime index build`"
            )
        postings = Postings.load(index_dir, mmap)
        vocab = json.loads((index_dir / "vocab.index.json").read_text(encoding="utf-8"))
        store = DocStore(index_dir)
        threads = threads or min(2, usable_cpus())
        return cls(index_dir, postings, vocab, store, manifest, threads)

    # -- core ---------------------------------------------------------------------------
    def encode_queries(self, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Term ids of each query as (q_ptr, q_terms); unknown words are dropped."""
        vocab_get = self.vocab.get
        ptr = np.zeros(len(queries) + 1, dtype=np.int64)
        terms: list[int] = []
        for i, q in enumerate(queries):
            for tok in self._tokenizer.tokens(q):
                tid = vocab_get(tok)
                if tid is not None:
                    terms.append(tid)
            ptr[i + 1] = len(terms)
        return ptr, np.asarray(terms, dtype=np.int64)

    def retrieve_ids(self, queries: Sequence[str], topk: int) -> tuple[np.ndarray, np.ndarray]:
        """Doc positions (``-1`` padded) and scores, each shaped ``(len(queries), topk)``."""
        from searchprime.search._bm25_kernels import search_block

        k = max(1, min(int(topk), self.num_docs))
        q_ptr, q_terms = self.encode_queries(queries)
        nq = len(queries)
        ids = np.full((nq, topk), -1, dtype=np.int64)
        scores = np.zeros((nq, topk), dtype=np.float32)
        if nq == 0:
            return ids, scores
        out_ids = np.empty((nq, k), dtype=np.int64)
        out_scores = np.empty((nq, k), dtype=np.float32)
        args = tuple(self.postings)
        parts = min(self.threads, nq)
        if parts <= 1 or nq < 4:
            search_block(*args, q_ptr, q_terms, self.num_docs, k, out_ids, out_scores)
        else:
            bounds = np.linspace(0, nq, parts + 1).astype(int)
            futs = [
                self._pool.submit(
                    search_block,
                    *args,
                    q_ptr[lo : hi + 1],
                    q_terms,
                    self.num_docs,
                    k,
                    out_ids[lo:hi],
                    out_scores[lo:hi],
                )
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
                if hi > lo
            ]
            for f in futs:
                f.result()
        ids[:, :k] = out_ids
        scores[:, :k] = out_scores
        return ids, scores

    def search_sync(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """Blocking batched search: the top ``topk`` matching hits per query."""
        ids, scores = self.retrieve_ids(queries, topk)
        hit = self.store.hit
        return [
            [hit(int(d), float(s)) for d, s in zip(row_ids, row_s, strict=True) if d >= 0]
            for row_ids, row_s in zip(ids, scores, strict=True)
        ]

    # -- SearchBackend ------------------------------------------------------------------
    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """Batched search off the event loop; concurrent calls are merged into one batch."""
        return await self._batcher(queries, topk)

    def describe(self) -> dict[str, Any]:
        """Settings to record with each trajectory."""
        cfg = self.config
        return {
            "kind": "bm25",
            "index": str(self.index_dir),
            "num_docs": self.num_docs,
            "k1": cfg.k1,
            "b": cfg.b,
            "stemmer": cfg.stemmer,
            "stopwords": cfg.stopwords,
        }

    async def aclose(self) -> None:
        """Release the thread pool and the memory maps."""
        self.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        self._pool.shutdown(wait=False)
        self.store.close()

    def __len__(self) -> int:
        return self.num_docs
