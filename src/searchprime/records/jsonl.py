"""JSONL I/O: append-only writing that never leaves a half record, and located read errors.

Readers raise :class:`RecordError` as ``file:line: field: problem``. A writer opened on an
existing file first cuts off a trailing partial line (the remains of a killed run), so a
half-written line is never counted as a record.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from searchprime.errors import RecordError

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "JsonlWriter",
    "atomic_write_text",
    "iter_json_lines",
    "read_jsonl",
    "repair_tail",
    "validation_to_record_error",
    "write_jsonl",
]


def validation_to_record_error(
    exc: ValidationError, path: str | Path | None, line: int | None
) -> RecordError:
    """Turn the first pydantic error into a located :class:`RecordError`."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "<record>"
    return RecordError(path, line, field, err.get("msg", "invalid"))


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_json_lines(
    path: str | Path, *, allow_partial_tail: bool = True
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL(.gz) file.

    A final line without a newline that does not parse is the remains of a killed writer and
    is skipped when ``allow_partial_tail``; any other bad line raises :class:`RecordError`.
    """
    path = Path(path)
    with _open_text(path) as fh:
        pending: tuple[int, str] | None = None
        for lineno, raw in enumerate(fh, start=1):
            if pending is not None:
                yield _parse_line(path, *pending)
            pending = (lineno, raw)
        if pending is not None:
            lineno, raw = pending
            if allow_partial_tail and not raw.endswith("\n"):
                try:
                    yield _parse_line(path, lineno, raw)
                except RecordError:
                    return
            else:
                yield _parse_line(path, lineno, raw)


def _parse_line(path: Path, lineno: int, raw: str) -> tuple[int, dict[str, Any]]:
    text = raw.strip()
    if not text:
        return lineno, {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(path, lineno, "<json>", f"not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise RecordError(path, lineno, "<record>", f"expected an object, got {type(obj).__name__}")
    return lineno, obj


def read_jsonl(path: str | Path, model: type[M], *, allow_partial_tail: bool = True) -> Iterator[M]:
    """Read and validate every record of a JSONL file as ``model``."""
    for lineno, obj in iter_json_lines(path, allow_partial_tail=allow_partial_tail):
        if not obj:
            continue
        try:
            yield model.model_validate(obj)
        except ValidationError as exc:
            raise validation_to_record_error(exc, path, lineno) from None


def repair_tail(path: str | Path) -> int:
    """Cut a trailing partial line off ``path``; return how many bytes were removed."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # walk back to the last newline
        pos, chunk = size, 65536
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            block = fh.read(pos - start)
            idx = block.rfind(b"\n")
            if idx >= 0:
                cut = start + idx + 1
                fh.truncate(cut)
                return size - cut
            pos = start
        fh.truncate(0)
        return size


class JsonlWriter:
    """Append records to a JSONL file, one flushed (and optionally fsynced) line each.

    Each record is serialised completely before a single ``write`` call, so a crash can at
    worst leave one partial final line, which :func:`repair_tail` removes on the next open.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = repair_tail(self.path)
        self._fh = self.path.open("a", encoding="utf-8")
        self._fsync = fsync
        self.written = 0

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        if isinstance(record, BaseModel):
            line = record.model_dump_json(exclude_none=False)
        else:
            line = json.dumps(record, ensure_ascii=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        self.written += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a whole file atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(path: str | Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write a whole JSONL file atomically; return the number of records."""
    lines = []
    for rec in records:
        if isinstance(rec, BaseModel):
            lines.append(rec.model_dump_json())
        else:
            lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)
