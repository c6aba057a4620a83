"""BM25 over a corpus file: a streaming, parallel build and a memory-mapped, batched searcher.

The index is written in bm25s's on-disk layout (``data/indices/indptr.csc.index.npy``,
``vocab.index.json``, ``params.index.json``; Lucene scoring, ``k1=0.9, b=0.4`` by default)
so ``bm25s.BM25.load(dir, mmap=True)`` reads it too, plus a document store
(``docs.jsonl`` + ``docs.offsets.npy``) and ``searchprime_index.json``.

Build (why not ``bm25s.BM25.index``): bm25s holds the whole corpus and its token lists in
memory and tokenizes on one thread (100 s and 3.8 GiB at 1M passages). Here worker processes
tokenize blocks of raw lines (each distinct word stemmed once), the parent merges block
vocabularies and spills (doc, term, tf) triples to disk, then a second pass scatters the scores
into the CSC arrays with a numba kernel. Peak memory is the final index plus one block.

Search: queries are tokenized like the corpus and scored by the nogil numba kernel in
:mod:`searchprime.search._bm25_kernels`, a batch split over ``threads`` threads.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from searchprime.errors import ConfigError, RecordError
from searchprime.records import SearchHit
from searchprime.search._batch import MicroBatcher
from searchprime.search._bm25_build import Block, BlockResult, init_worker, tokenize_block
from searchprime.search._docstore import DocStore, DocStoreWriter
from searchprime.search._text import Tokenizer
from searchprime.search.corpus import is_parquet, iter_parquet_rows, open_binary

__all__ = ["BM25Config", "BM25Search", "build_bm25_index", "read_manifest"]

MANIFEST = "searchprime_index.json"
MAXSCORE = "maxscore.index.npy"
FORMAT_VERSION = 1


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
        default=4 << 20, ge=1 << 12, description="Bytes of JSONL per tokenizer block."
    )


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    """The ``searchprime_index.json`` of an index folder (kind, config, counts)."""
    path = Path(index_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{index_dir}: not a searchprime index (no {MANIFEST})") from None


# ----------------------------------------------------------------------------------- build


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


def _map_blocks(path: Path, cfg: BM25Config, skip_bad: bool, workers: int) -> Iterator[BlockResult]:
    blocks = _blocks(path, cfg.block_bytes)
    args = (cfg.stemmer, cfg.stopwords, skip_bad)
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


def _usable_cpus() -> int:
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
    workers = cfg.workers or _usable_cpus()
    if corpus_path.stat().st_size < 2 * cfg.block_bytes:
        workers = 1  # not worth starting processes
    store = DocStoreWriter(out)
    vocab: dict[str, int] = {}
    worker_maps: dict[int, np.ndarray] = {}
    df = np.zeros(1 << 16, dtype=np.int64)
    doc_lens: list[np.ndarray] = []
    n_docs = 0
    nnz = 0
    skipped = 0
    examples: list[str] = []
    spill = [(tmp / name).open("wb") for name in ("doc.i32", "term.i32", "tf.u16")]
    try:
        for res in _map_blocks(corpus_path, cfg, skip_bad, workers):
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
            store.write_block(res.blob, res.line_lengths)
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
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    _write_csc(tmp, out, nnz, lens, idf, avgdl, cfg, indptr)
    shutil.rmtree(tmp, ignore_errors=True)

    (out / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = {
        "k1": cfg.k1,
        "b": cfg.b,
        "delta": 0.5,
        "method": "lucene",
        "idf_method": "lucene",
        "dtype": "float32",
        "int_dtype": "int32",
        "num_docs": n_docs,
        "version": "searchprime",
        "backend": "numba",
    }
    (out / "params.index.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
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


def _write_csc(tmp, out, nnz, lens, idf, avgdl, cfg, indptr) -> None:
    from searchprime.search._bm25_kernels import scatter_scores

    data = np.lib.format.open_memmap(out / "data.csc.index.npy", "w+", np.float32, (nnz,))
    indices = np.lib.format.open_memmap(out / "indices.csc.index.npy", "w+", np.int32, (nnz,))
    doc = np.memmap(tmp / "doc.i32", np.int32, "r", shape=(nnz,)) if nnz else np.zeros(0, np.int32)
    term = np.memmap(tmp / "term.i32", np.int32, "r", shape=(nnz,)) if nnz else doc
    tf = np.memmap(tmp / "tf.u16", np.uint16, "r", shape=(nnz,)) if nnz else doc
    ptr = indptr[:-1].copy()
    step = 1 << 23
    for s in range(0, nnz, step):
        scatter_scores(
            np.asarray(doc[s : s + step]),
            np.asarray(term[s : s + step]),
            np.asarray(tf[s : s + step]),
            lens,
            idf,
            np.float32(avgdl),
            np.float32(cfg.k1),
            np.float32(cfg.b),
            ptr,
            data,
            indices,
        )
    data.flush()
    indices.flush()
    np.save(out / MAXSCORE, max_impacts(data, indptr))
    del data, indices, doc, term, tf
    np.save(out / "indptr.csc.index.npy", indptr)


def max_impacts(data: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Each term's largest score (its MaxScore upper bound); 0 for empty columns."""
    out = np.zeros(len(indptr) - 1, dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(np.asarray(data), indptr[nonempty])
    return out


# ---------------------------------------------------------------------------------- search


class BM25Search:
    """A loaded BM25 index; implements :class:`~searchprime.search.base.SearchBackend`."""

    name = "bm25"

    def __init__(
        self,
        index_dir: Path,
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        maxscore: np.ndarray,
        vocab: dict[str, int],
        store: DocStore,
        manifest: dict[str, Any],
        threads: int,
    ):
        self.index_dir = index_dir
        self.data, self.indices, self.indptr = data, indices, indptr
        self.maxscore = maxscore
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
        mode = "r" if mmap else None
        data = np.load(index_dir / "data.csc.index.npy", mmap_mode=mode)
        indices = np.load(index_dir / "indices.csc.index.npy", mmap_mode=mode)
        indptr = np.load(index_dir / "indptr.csc.index.npy")
        vocab = json.loads((index_dir / "vocab.index.json").read_text(encoding="utf-8"))
        if (index_dir / MAXSCORE).exists():
            maxscore = np.load(index_dir / MAXSCORE)
        else:  # e.g. a folder written by bm25s itself
            maxscore = max_impacts(data, indptr)
        store = DocStore(index_dir)
        threads = threads or min(2, _usable_cpus())
        return cls(index_dir, data, indices, indptr, maxscore, vocab, store, manifest, threads)

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
        args = (self.data, self.indices, self.indptr, self.maxscore)
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
