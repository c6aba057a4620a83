"""JSONL I/O: append-only writing that never leaves a half record, and located read errors.

Readers raise :class:`RecordError` as ``file:line: field: problem`` for bad JSON, bytes that are
not UTF-8, bad or truncated gzip. Readers of finished files (:func:`read_jsonl`,
:func:`read_latest`) skip a partial last line and keep the last record per key, and say so
(see :mod:`searchprime.records.latest`). A writer opened on an existing file first cuts off a
trailing partial line (the remains of a killed run), so a half-written line is never counted
as a record; a complete last record that only lacks its newline is kept.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from searchprime.errors import RecordError
from searchprime.records._lines import LineReader, blame_damaged_gzip, decode_utf8, open_lines
from searchprime.records.latest import ReadReport, latest_per_key

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "JsonlWriter",
    "atomic_write_text",
    "iter_json_lines",
    "read_jsonl",
    "read_latest",
    "repair_tail",
    "validation_to_record_error",
    "write_jsonl",
]

log = logging.getLogger(__name__)


def validation_to_record_error(
    exc: ValidationError, path: str | Path | None, line: int | None
) -> RecordError:
    """Turn the first pydantic error into a located :class:`RecordError`."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "<record>"
    cause = err.get("ctx", {}).get("error") if err.get("type") == "value_error" else None
    problem = str(cause) if cause is not None else err.get("msg", "invalid")
    return RecordError(path, line, field, problem)


def iter_json_lines(
    path: str | Path, *, allow_partial_tail: bool = True, report: ReadReport | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each line of a JSONL(.gz) file (``{}`` for a blank).

    A final line without a newline that does not parse is the remains of a killed writer and
    is skipped when ``allow_partial_tail`` (its number goes to ``report.truncated_line``); any
    other bad line, bad bytes or bad gzip raise :class:`RecordError`.
    """
    path = Path(path)
    pending: tuple[int, bytes] | None = None
    with open_lines(path) as lines:
        for lineno, raw in lines:
            if pending is not None:
                yield _parse_read_line(lines, *pending)
            elif raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            pending = (lineno, raw)
        if pending is None:
            return
        lineno, raw = pending
        if allow_partial_tail and not raw.endswith(b"\n"):
            try:
                parsed = _parse_line(path, lineno, raw)
            except RecordError:
                if report is not None:
                    report.truncated_line = lineno
                return
            yield parsed
        else:
            yield _parse_read_line(lines, lineno, raw)


def _parse_read_line(lines: LineReader, lineno: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    """:func:`_parse_line`, but a garbage line of a damaged gzip stream blames the gzip."""
    try:
        return _parse_line(lines.path, lineno, raw)
    except RecordError as exc:
        raise blame_damaged_gzip(exc) from None


def _parse_line(path: Path, lineno: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    text = decode_utf8(raw, path, lineno).strip()
    if not text:
        return lineno, {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(path, lineno, "<json>", f"not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an over-long integer, deep nesting
        raise RecordError(path, lineno, "<json>", f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise RecordError(path, lineno, "<record>", f"expected an object, got {type(obj).__name__}")
    return lineno, obj


def _validated(
    path: Path, model: type[M], allow_partial_tail: bool, report: ReadReport
) -> Iterator[tuple[int, M]]:
    for lineno, obj in iter_json_lines(path, allow_partial_tail=allow_partial_tail, report=report):
        if not obj:
            continue
        try:
            yield lineno, model.model_validate(obj)
        except ValidationError as exc:
            raise blame_damaged_gzip(validation_to_record_error(exc, path, lineno)) from None


def _key_of(model: type[BaseModel]) -> Callable[[Any], Hashable] | None:
    """A model with a ``key`` property (Trajectory: ``(task_id, attempt)``) is deduplicated."""
    if isinstance(getattr(model, "key", None), property):
        return lambda record: record.key
    return None


def _say(report: ReadReport) -> None:
    for note in report.notes():
        log.warning(note)


def read_latest(
    path: str | Path, model: type[M], *, allow_partial_tail: bool = True
) -> tuple[list[M], ReadReport]:
    """Every record of a finished JSONL file, validated as ``model``, and what was skipped.

    For a model with a ``key`` property only the last record of each key is kept, at the
    position where the key first appeared. What was skipped (a truncated last line, earlier
    records of repeated keys) is in the returned :class:`ReadReport` and logged as a warning.
    """
    path = Path(path)
    report = ReadReport(path=str(path))
    numbered = _validated(path, model, allow_partial_tail, report)
    key = _key_of(model)
    if key is None:
        records = [record for _, record in numbered]
        report.records = len(records)
    else:
        records, _ = latest_per_key(numbered, key, report)
    _say(report)
    return records, report


def read_jsonl(
    path: str | Path, model: type[M], *, allow_partial_tail: bool = True, latest: bool = True
) -> Iterator[M]:
    """Read and validate the records of a JSONL file as ``model``.

    With ``latest`` (the default) a model with a ``key`` property yields only the last record
    per key (see :func:`read_latest`); ``latest=False`` yields every record as written, which
    is what a check for repeated keys needs. Skipped lines are logged as warnings.
    """
    if latest and _key_of(model) is not None:
        yield from read_latest(path, model, allow_partial_tail=allow_partial_tail)[0]
        return
    report = ReadReport(path=str(path))
    for _, record in _validated(Path(path), model, allow_partial_tail, report):
        report.records += 1
        yield record
    _say(report)


def _is_complete_record(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return False


def repair_tail(path: str | Path) -> int:
    """Make ``path`` end with a whole line; return how many bytes were cut off.

    A last line without its newline that parses as a JSON object is a complete record (the
    writer died between the two): it keeps its place and gets the newline. Anything else after
    the last newline is a partial line and is cut.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        cut = _start_of_last_line(fh, size)
        fh.seek(cut)
        if _is_complete_record(fh.read()):
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
            return 0
        fh.truncate(cut)
        return size - cut


def _start_of_last_line(fh: Any, size: int, chunk: int = 65536) -> int:
    pos = size
    while pos > 0:
        start = max(0, pos - chunk)
        fh.seek(start)
        idx = fh.read(pos - start).rfind(b"\n")
        if idx >= 0:
            return start + idx + 1
        pos = start
    return 0


class JsonlWriter:
    """Append records to a JSONL file, one flushed (and optionally fsynced) line each.

    Each record is serialised completely before a single ``write`` call, so a crash can at
    worst leave one partial final line, which :func:`repair_tail` removes on the next open (a
    complete last record whose newline was lost is kept and gets its newline).
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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a whole file atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a whole text file (UTF-8) atomically (temp file + rename)."""
    atomic_write_bytes(path, text.encode("utf-8"))


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
