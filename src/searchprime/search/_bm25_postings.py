"""Compact BM25 postings on disk: term frequencies and 3-byte doc ids, scored at query time.

Each term's posting list is a column of a CSC layout (``indptr``, int64): its doc ids, ascending,
split in ``postings.lo.npy`` (uint16, the low 16 bits) and ``postings.hi.npy`` (uint8 up to 2^24
documents, else uint16), and its term frequencies in ``postings.tf.npy`` (uint8 when every tf
fits, else uint16). With ``idf.npy`` per term and ``norm.npy`` per document (``k1 * (1 - b + b *
len / avgdl)``) a posting scores ``idf * tf / (tf + norm)``, as Lucene does from its freqs and
norms. That is 4 bytes a posting where precomputed float32 scores and int32 ids took 8, at the
same query speed (the division hides behind the random access to the accumulator).
``maxscore.npy`` keeps each term's largest score for MaxScore pruning.

The build scatters the spilled (doc, term, tf) triples into the columns in passes over term
ranges of at most ``PASS_POSTINGS`` postings, reading the spill in chunks and writing each range
with plain writes: the build never maps the whole index or the whole spill (their pages would
count in its resident memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

TF, LO, HI = "postings.tf.npy", "postings.lo.npy", "postings.hi.npy"
INDPTR, IDF, NORM, MAXSCORE = "indptr.npy", "idf.npy", "norm.npy", "maxscore.npy"
PASS_POSTINGS = 1 << 24  # postings scattered per pass (64 MiB of buffers)
CHUNK = 1 << 22  # spilled triples read at a time (40 MiB)
SPILL = (("doc.i32", np.int32), ("term.i32", np.int32), ("tf.u16", np.uint16))

__all__ = ["Postings", "write_postings"]


class Postings(NamedTuple):
    """The arrays the search kernel reads (in its argument order)."""

    tf: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    indptr: np.ndarray
    idf: np.ndarray
    norm: np.ndarray
    maxscore: np.ndarray

    @classmethod
    def load(cls, index_dir: Path, mmap: bool = True) -> Postings:
        """The postings of ``index_dir`` (the long arrays memory-mapped when ``mmap``)."""
        mode = "r" if mmap else None
        return cls(
            *(np.load(index_dir / name, mmap_mode=mode) for name in (TF, LO, HI)),
            *(np.load(index_dir / name) for name in (INDPTR, IDF, NORM, MAXSCORE)),
        )


def _ranges(indptr: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive term ranges of at most ``budget`` postings (a longer term alone)."""
    out, t0, n_terms = [], 0, len(indptr) - 1
    while t0 < n_terms:
        t1 = int(np.searchsorted(indptr, indptr[t0] + budget, side="right")) - 1
        t1 = min(max(t1, t0 + 1), n_terms)
        out.append((t0, t1))
        t0 = t1
    return out


def _open_npy(path: Path, dtype: type, n: int):
    """Create ``path`` as an .npy of ``n`` items; returns (open file, data offset)."""
    mm = np.lib.format.open_memmap(path, "w+", dtype, (n,))
    offset = mm.offset if n else 0
    del mm
    return path.open("r+b"), offset


def write_postings(
    spill_dir: Path,
    out: Path,
    nnz: int,
    indptr: np.ndarray,
    idf: np.ndarray,
    norm: np.ndarray,
    max_tf: int,
) -> None:
    """Write the postings of the spilled ``doc.i32``/``term.i32``/``tf.u16`` triples."""
    from searchprime.search._bm25_kernels import max_scores, scatter_postings

    tf_t = np.uint8 if max_tf <= 0xFF else np.uint16
    hi_t = np.uint8 if len(norm) <= 1 << 24 else np.uint16
    files = [_open_npy(out / n, t, nnz) for n, t in ((TF, tf_t), (LO, np.uint16), (HI, hi_t))]
    maxscore = np.zeros(len(idf), dtype=np.float32)
    ptr = indptr[:-1].copy()
    try:
        for t0, t1 in _ranges(indptr, PASS_POSTINGS):
            base, n = int(indptr[t0]), int(indptr[t1] - indptr[t0])
            bufs = [np.empty(n, t) for t in (tf_t, np.uint16, hi_t)]
            for start in range(0, nnz, CHUNK):
                count = min(CHUNK, nnz - start)
                doc, term, tf = (
                    np.fromfile(spill_dir / name, dtype=t, count=count, offset=start * t().itemsize)
                    for name, t in SPILL
                )
                scatter_postings(doc, term, tf, t0, t1, base, ptr, *bufs)
            max_scores(*bufs, indptr, idf, norm, t0, t1, maxscore)
            for (fh, offset), buf in zip(files, bufs, strict=True):
                fh.seek(offset + base * buf.itemsize)
                fh.write(buf.data)
    finally:
        for fh, _ in files:
            fh.close()
    for name, arr in ((INDPTR, indptr), (IDF, idf), (NORM, norm), (MAXSCORE, maxscore)):
        np.save(out / name, arr)
