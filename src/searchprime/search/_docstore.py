"""A memory-mapped document store: ``docs.jsonl`` plus ``docs.offsets.npy`` (int64, N+1).

Each line is a compact JSON object ``{id, title, text, source?, url?, meta?}``; document ``i``
is the byte range ``offsets[i]:offsets[i+1]``. Opening maps both files, so loading a 1M-passage
store costs no memory until documents are read.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import IO, Any

import numpy as np

from searchprime.records import SearchHit
from searchprime.search.corpus import _loads

DOCS = "docs.jsonl"
OFFSETS = "docs.offsets.npy"

__all__ = ["DocStore", "DocStoreWriter"]


class DocStoreWriter:
    """Append serialized document lines; :meth:`close` writes the offsets."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self._fh: IO[bytes] = (out_dir / DOCS).open("wb")
        self._lengths: list[np.ndarray] = []

    def write_block(self, blob: bytes, line_lengths: np.ndarray) -> None:
        """Append a block of ``\\n``-terminated lines whose byte lengths are ``line_lengths``."""
        self._fh.write(blob)
        self._lengths.append(np.asarray(line_lengths, dtype=np.int64))

    def close(self) -> int:
        """Finish the store; returns the number of documents."""
        self._fh.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        np.save(self.out_dir / OFFSETS, offsets)
        return len(lengths)


class DocStore:
    """Read-only, memory-mapped access to documents by integer position."""

    def __init__(self, index_dir: str | Path):
        index_dir = Path(index_dir)
        self.offsets = np.load(index_dir / OFFSETS, mmap_mode="r")
        self._fh = (index_dir / DOCS).open("rb")
        size = (index_dir / DOCS).stat().st_size
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, i: int) -> dict[str, Any]:
        """Document ``i`` as a dict."""
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return _loads(self._mm[start:end])

    def hit(self, i: int, score: float | None = None) -> SearchHit:
        """Document ``i`` as a :class:`SearchHit`."""
        d = self.get(i)
        # model_construct: the store was validated when it was built, and full validation
        # would cost more than the BM25 query itself for k=10
        return SearchHit.model_construct(
            doc_id=d["id"],
            title=d.get("title", ""),
            text=d.get("text", ""),
            source=d.get("source"),
            url=d.get("url"),
            score=score,
            meta=d.get("meta") or {},
        )

    def close(self) -> None:
        """Unmap the store."""
        if isinstance(self._mm, mmap.mmap):
            self._mm.close()
        self._fh.close()
