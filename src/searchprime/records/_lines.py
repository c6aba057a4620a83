"""Byte-level line reading of plain or gzipped files, every failure located.

Bad gzip data, a gzip stream cut short and bytes that are not UTF-8 surface as
:class:`RecordError` (``file:line: field: problem``) instead of ``BadGzipFile``, ``EOFError``
(which click would turn into a bare ``Aborted.``) or ``UnicodeDecodeError``.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from searchprime.errors import RecordError

__all__ = [
    "LineReader",
    "blame_damaged_gzip",
    "decode_utf8",
    "first_line",
    "open_lines",
    "read_text",
]

_READ_ERRORS = (OSError, EOFError, zlib.error)
_PIECE = 1 << 20


class LineReader:
    """Reads a file (``.gz``: decompressed) as bytes and knows which line it is on."""

    def __init__(self, path: Path):
        self.path = path
        self.line = 1  # the line the next byte read belongs to
        self._gzip = path.suffix == ".gz"
        try:
            self._fh: IO[bytes] = gzip.open(path, "rb") if self._gzip else path.open("rb")
        except OSError as exc:
            raise RecordError(path, None, "<file>", f"cannot open: {exc.strerror or exc}") from None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all when negative), like ``file.read``."""
        if not self._gzip:
            try:
                data = self._fh.read(size)
            except OSError as exc:
                raise self._error(exc) from None
            self.line += data.count(b"\n")
            return data
        # piece by piece, so a failure is located at the line where the good data ends
        parts: list[bytes] = []
        got = 0
        while size < 0 or got < size:
            try:
                part = self._fh.read1(_PIECE if size < 0 else min(_PIECE, size - got))
            except _READ_ERRORS as exc:
                self.line += sum(p.count(b"\n") for p in parts)
                raise self._error(exc) from None
            if not part:
                break
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
        self.line += data.count(b"\n")
        return data

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """``(line number, raw line)`` pairs; the raw line keeps its ``\\n`` if it had one."""
        fh = self._fh
        try:
            for raw in fh:
                yield self.line, raw
                self.line += 1
        except _READ_ERRORS as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> RecordError:
        if isinstance(exc, EOFError):
            problem = "truncated gzip file: the compressed stream ends early (was it cut short?)"
        elif isinstance(exc, gzip.BadGzipFile) and str(exc).startswith("Not a gzipped file"):
            problem = "not a gzip file" if self.line == 1 else f"corrupt gzip data ({exc})"
        elif self._gzip:
            problem = f"corrupt gzip data ({exc})"
        else:
            return RecordError(self.path, self.line, "<file>", f"cannot read: {exc}")
        return RecordError(self.path, self.line, "<gzip>", problem)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> LineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def blame_damaged_gzip(err: RecordError) -> RecordError:
    """``err`` about a line of a ``.gz`` file, or a ``<gzip>`` error at that line when the
    file's compressed stream is itself damaged.

    Damaged deflate data often decodes to a few lines of garbage before zlib or the CRC
    notices; without this check the user would be sent to fix a record never written that way.
    """
    if err.field == "<gzip>" or err.line is None or not err.path.endswith(".gz"):
        return err
    reader = LineReader(Path(err.path))
    try:
        while reader.read(_PIECE):
            pass
    except RecordError as found:
        if found.field == "<gzip>":
            problem = f"{found.problem}; line {err.line} is the first that decodes to garbage"
            return RecordError(err.path, err.line, "<gzip>", problem)
    finally:
        reader.close()
    return err


def open_lines(path: str | Path) -> LineReader:
    """Open ``path`` for located byte reading (``with open_lines(p) as r: for n, raw in r``)."""
    return LineReader(Path(path))


def decode_utf8(raw: bytes, path: str | Path, line: int) -> str:
    """``raw`` as text, or a :class:`RecordError` naming the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(
            path,
            line,
            "<encoding>",
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)",
        ) from None


def read_text(path: str | Path) -> str:
    """A whole (small) UTF-8 file as text, a leading BOM dropped; bad bytes are located."""
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        line = data.count(b"\n", 0, exc.start) + 1
        decode_utf8(data[start : end if end >= 0 else len(data)], path, line)
        raise  # pragma: no cover - decode_utf8 raised for the same bytes


def first_line(exc: BaseException, path: str | Path | None = None) -> str:
    """The first line of a third-party error's message (some span many lines), without a
    leading "... '<path>': " that repeats the file name the error is located at."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if path is not None:
        _, found, rest = text.partition(f"'{path}': ")
        text = rest if found and rest else text
    return text
