"""A compressed, memory-mapped document store: ``docs.zst`` plus ``docs.offsets.npy``.

Each document is a compact JSON object ``{id, title, text, source?, url?, meta?}``, compressed
on its own as one zstd frame against a dictionary trained on the first documents (one frame per
document: a hit decompresses ~700 bytes in a few µs, where a block of 64 documents costs ~100x
more and compresses only a little better). ``docs.zst`` holds the dictionary, then the frames;
``docs.offsets.npy`` (int64, N+1) gives frame ``i`` as ``offsets[i]:offsets[i+1]``, and
``offsets[0]`` is the dictionary's length. Opening maps both files, so a 1M-passage store costs
no memory until documents are read.

The previous layout (``docs.jsonl``: the same JSON objects, uncompressed, one a line) is still
read: :class:`DocStore` picks the layout by the file present.
"""

from __future__ import annotations

import mmap
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np

from searchprime._lazy import require
from searchprime.records import SearchHit
from searchprime.search.corpus import _loads

DOCS = "docs.zst"
OFFSETS = "docs.offsets.npy"
LEGACY_DOCS = "docs.jsonl"
LEVEL = 3  # zstd level: 3 compresses ~60 MB/s a core with a dictionary; 9+ gains ~3% at 1/5 speed
DICT_BYTES = 112_640  # zstd's default dictionary size
MIN_TRAIN_DOCS = 64  # fewer samples than this: no dictionary (training would fail)

__all__ = ["DOCS", "OFFSETS", "DocStore", "DocStoreWriter", "FrameCompressor", "store_files"]


def _zstd() -> Any:
    return require("zstandard", "core")


def store_files(index_dir: str | Path) -> list[str]:
    """The document store's file names in ``index_dir`` (either layout), e.g. for copying."""
    legacy = (Path(index_dir) / LEGACY_DOCS).exists() and not (Path(index_dir) / DOCS).exists()
    return [LEGACY_DOCS if legacy else DOCS, OFFSETS]


def train_dictionary(docs: list[bytes]) -> bytes:
    """A zstd dictionary for documents like ``docs`` (``b""``: too few to train one)."""
    if len(docs) < MIN_TRAIN_DOCS:
        return b""
    zstd = _zstd()
    try:
        return zstd.train_dictionary(DICT_BYTES, docs, level=LEVEL).as_bytes()
    except zstd.ZstdError:  # e.g. samples too small or too uniform
        return b""


class FrameCompressor:
    """Compress documents one frame each against a dictionary (picklable via its bytes)."""

    def __init__(self, dictionary: bytes):
        zstd = _zstd()
        self.dictionary = dictionary
        kw: dict[str, Any] = {"write_checksum": False, "write_dict_id": False}
        if dictionary:
            d = zstd.ZstdCompressionDict(dictionary)
            d.precompute_compress(level=LEVEL)
            kw["dict_data"] = d
        self._c = zstd.ZstdCompressor(level=LEVEL, write_content_size=True, **kw)

    def frames(self, docs: list[bytes]) -> tuple[bytes, np.ndarray]:
        """The concatenated frames of ``docs`` and each frame's length."""
        out = [self._c.compress(d) for d in docs]
        return b"".join(out), np.fromiter(map(len, out), dtype=np.int64, count=len(out))


class DocStoreWriter:
    """Append documents while streaming; :meth:`close` writes the offsets.

    Either pass serialized documents (:meth:`write_block`; the dictionary is trained on the
    first block) or frames compressed elsewhere with :attr:`dictionary` (:meth:`write_frames`,
    after :meth:`set_dictionary`), e.g. by build worker processes.
    """

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self._fh: IO[bytes] = (out_dir / DOCS).open("wb")
        self._lengths: list[np.ndarray] = []
        self._comp: FrameCompressor | None = None

    def set_dictionary(self, dictionary: bytes) -> FrameCompressor:
        """Fix the dictionary (once, before any document); returns a compressor using it."""
        if self._comp is not None:
            raise RuntimeError("the document store's dictionary is already set")
        self._comp = FrameCompressor(dictionary)
        self._fh.write(dictionary)
        return self._comp

    def write_block(self, blob: bytes, line_lengths: np.ndarray) -> None:
        """Append ``\\n``-terminated JSON lines whose byte lengths are ``line_lengths``."""
        docs, pos = [], 0
        for n in np.asarray(line_lengths, dtype=np.int64).tolist():
            docs.append(blob[pos : pos + n - 1])
            pos += n
        if self._comp is None:
            self.set_dictionary(train_dictionary(docs))
        self.write_frames(*self._comp.frames(docs))

    def write_frames(self, frames: bytes, frame_lengths: np.ndarray) -> None:
        """Append frames compressed with this store's dictionary."""
        if self._comp is None:
            raise RuntimeError("set_dictionary() before write_frames()")
        self._fh.write(frames)
        self._lengths.append(np.asarray(frame_lengths, dtype=np.int64))

    def close(self) -> int:
        """Finish the store; returns the number of documents."""
        if self._comp is None:
            self.set_dictionary(b"")
        self._fh.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.empty(len(lengths) + 1, dtype=np.int64)
        offsets[0] = len(self._comp.dictionary)
        np.cumsum(lengths, out=offsets[1:])
        offsets[1:] += offsets[0]
        np.save(self.out_dir / OFFSETS, offsets)
        return len(lengths)


class DocStore:
    """Read-only, memory-mapped access to documents by integer position (thread-safe)."""

    def __init__(self, index_dir: str | Path):
        index_dir = Path(index_dir)
        self.offsets = np.load(index_dir / OFFSETS, mmap_mode="r")
        path = index_dir / DOCS
        self.compressed = path.exists() or not (index_dir / LEGACY_DOCS).exists()
        if not self.compressed:
            path = index_dir / LEGACY_DOCS
        self._fh = path.open("rb")  # FileNotFoundError for an incomplete index
        size = path.stat().st_size
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self._local = threading.local()  # a zstd decompressor is not safe across threads
        self._dict = bytes(self._mm[: int(self.offsets[0])]) if self.compressed else b""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _decompressor(self) -> Any:
        d = getattr(self._local, "d", None)
        if d is None:
            zstd = _zstd()
            kw = {"dict_data": zstd.ZstdCompressionDict(self._dict)} if self._dict else {}
            d = self._local.d = zstd.ZstdDecompressor(**kw)
        return d

    def raw(self, i: int) -> bytes:
        """Document ``i``'s JSON bytes."""
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        if not self.compressed:
            return self._mm[start:end]
        return self._decompressor().decompress(self._mm[start:end])

    def get(self, i: int) -> dict[str, Any]:
        """Document ``i`` as a dict."""
        return _loads(self.raw(i))

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
