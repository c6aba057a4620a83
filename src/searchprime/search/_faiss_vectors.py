"""Embeddings on disk as a float32 ``.npy``: appended shard by shard, read back by row ranges.

Neither side holds the whole matrix: :class:`NpyAppender` writes a fixed-size header it
rewrites with the final row count on close, and :func:`read_rows` / :func:`read_sample` use
plain file reads (not a memory map), so what they read does not linger in the process's RSS.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["ExactReranker", "NpyAppender", "npy_shape", "read_rows", "read_sample"]

_HEADER_LEN = 128  # bytes, a multiple of 64 as the .npy format wants; room for any shape


def _header(rows: int, dim: int) -> bytes:
    body = repr({"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}).encode()
    pad = _HEADER_LEN - 10 - len(body) - 1
    return (
        b"\x93NUMPY\x01\x00" + (_HEADER_LEN - 10).to_bytes(2, "little") + body + b" " * pad + b"\n"
    )


class NpyAppender:
    """Append ``(n, dim)`` float32 blocks to a ``.npy`` file of unknown final length."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fh: IO[bytes] = self.path.open("wb")
        self._fh.write(_header(0, 0))
        self.rows = 0
        self.dim: int | None = None

    def append(self, block: np.ndarray) -> None:
        """Write ``block`` (rows of the same width as every earlier block)."""
        block = np.ascontiguousarray(block, dtype="<f4")
        if self.dim is None:
            self.dim = int(block.shape[1])
        elif block.shape[1] != self.dim:
            raise ValueError(f"block width {block.shape[1]} != {self.dim}")
        self._fh.write(block.tobytes())
        self.rows += int(block.shape[0])

    def close(self) -> None:
        """Rewrite the header with the final shape."""
        if self._fh.closed:
            return
        self._fh.seek(0)
        self._fh.write(_header(self.rows, self.dim or 0))
        self._fh.close()


def npy_shape(path: str | Path) -> tuple[int, int, int]:
    """``(rows, dim, data_offset)`` of a 2-D little-endian float32 ``.npy`` file."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(fh)
        if dtype != np.dtype("<f4") or fortran or len(shape) != 2:
            raise ValueError(f"{path}: expected a C-order (n, dim) float32 array")
        return int(shape[0]), int(shape[1]), fh.tell()


def read_rows(path: str | Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the matrix in ``path``."""
    rows, dim, offset = npy_shape(path)
    stop = min(stop, rows)
    out = np.empty((max(0, stop - start), dim), dtype=np.float32)
    with open(path, "rb") as fh:
        fh.seek(offset + start * dim * 4)
        fh.readinto(memoryview(out).cast("B"))
    return out


def read_sample(path: str | Path, size: int, seed: int = 0) -> np.ndarray:
    """``size`` rows drawn without replacement (all rows when ``size`` >= their number)."""
    rows, dim, offset = npy_shape(path)
    if size >= rows:
        return read_rows(path, 0, rows)
    picks = np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))
    out = np.empty((size, dim), dtype=np.float32)
    row_bytes = dim * 4
    fd = os.open(path, os.O_RDONLY)
    try:
        for i, r in enumerate(picks):
            out[i] = np.frombuffer(os.pread(fd, row_bytes, offset + int(r) * row_bytes), "<f4")
    finally:
        os.close(fd)
    return out


class ExactReranker:
    """Re-score a compressed index's candidates exactly against the full embeddings on disk.

    A product quantizer loses the fine order among near neighbours; the exact inner product of
    the few hundred candidates it returns restores it. The matrix is memory-mapped and only the
    candidate rows are read: they are file-backed pages the OS can drop, so resident memory
    stays that of the compressed codes while the disk holds the floats (the layout DiskANN-style
    systems use; FAISS's ``IndexRefineFlat`` would hold every float in RAM).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        rows, dim, _ = npy_shape(self.path)
        self.matrix = np.load(self.path, mmap_mode="r")
        self.rows, self.dim = rows, dim
        # candidate rows are scattered: without this the kernel reads ahead around every row
        # touched and the whole file soon sits in the process's resident pages
        mapped = getattr(self.matrix, "_mmap", None)
        if mapped is not None and hasattr(mmap, "MADV_RANDOM"):
            mapped.madvise(mmap.MADV_RANDOM)

    def rerank(
        self, queries: np.ndarray, ids: np.ndarray, topk: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)`` of the ``topk`` best of each query's candidate ``ids`` (-1 padded)
        by exact inner product; missing places are ``-1`` / ``-inf``."""
        nq = len(queries)
        out_ids = np.full((nq, topk), -1, dtype=np.int64)
        out_scores = np.full((nq, topk), -np.inf, dtype=np.float32)
        for i in range(nq):
            cand = np.unique(ids[i][ids[i] >= 0])  # sorted: the rows are read in file order
            if not len(cand):
                continue
            scores = np.asarray(self.matrix[cand], dtype=np.float32) @ queries[i]
            best = np.argsort(-scores, kind="stable")[:topk]
            out_ids[i, : len(best)] = cand[best]
            out_scores[i, : len(best)] = scores[best]
        return out_ids, out_scores
