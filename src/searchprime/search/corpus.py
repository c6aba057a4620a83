"""Streaming corpus readers for the two layouts researchers already have.

* Search-R1 / FlashRAG wiki-18: ``{"id", "contents"}`` where the first line of ``contents`` is
  the title (often wrapped in double quotes) and the rest is the passage text.
* Explicit fields: ``{"id", "title", "text", "url"?, "source"?}`` (other keys go to ``meta``).

Files may be JSONL, gzipped JSONL (``.gz``) or parquet. A malformed record raises
:class:`~searchprime.errors.RecordError` as ``file:line: field: problem``; with
``skip_bad=True`` it is skipped and counted in :attr:`CorpusReader.skipped`. A file that cannot
be read at all (bad or truncated gzip, not parquet) always raises ``RecordError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchprime.errors import RecordError
from searchprime.records._lines import LineReader, first_line, open_lines
from searchprime.search.format import split_contents

try:  # orjson is several times faster on 1M-line corpora; the stdlib works too
    import orjson as _orjson

    _loads = _orjson.loads
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None
    _loads = json.loads

__all__ = ["CorpusDoc", "CorpusReader", "contents_of", "parse_record", "read_corpus"]

_KNOWN = frozenset({"id", "contents", "title", "text", "url", "source"})


@dataclass(slots=True)
class CorpusDoc:
    """One passage of a corpus."""

    id: str
    title: str
    text: str
    source: str | None = None
    url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def contents(self) -> str:
        """Search-R1's ``contents`` string: ``"Title"`` on the first line, then the text."""
        return contents_of(self.title, self.text)

    def to_json(self) -> dict[str, Any]:
        """A compact dict (``source``/``url``/``meta`` only when set)."""
        out: dict[str, Any] = {"id": self.id, "title": self.title, "text": self.text}
        if self.source is not None:
            out["source"] = self.source
        if self.url is not None:
            out["url"] = self.url
        if self.meta:
            out["meta"] = self.meta
        return out


def contents_of(title: str, text: str) -> str:
    """Search-R1's ``contents`` layout: ``'"Title"\\ntext'``."""
    return f'"{title}"\n{text}'


def _opt_str(obj: dict[str, Any], key: str, path: Any, line: int | None) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise RecordError(path, line, key, f"expected a string, got {type(value).__name__}")


def parse_record(obj: Any, path: Any = None, line: int | None = None) -> CorpusDoc:
    """Turn one decoded record (either layout) into a :class:`CorpusDoc` or raise RecordError."""
    if not isinstance(obj, dict):
        raise RecordError(
            path, line, "<record>", f"expected a JSON object, got {type(obj).__name__}"
        )
    doc_id = obj.get("id", obj.get("_id"))
    if doc_id is None:
        raise RecordError(path, line, "id", "missing")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise RecordError(path, line, "id", f"expected a string or integer, got {doc_id!r}")
    contents = obj.get("contents")
    if contents is not None:
        if not isinstance(contents, str):
            raise RecordError(path, line, "contents", "expected a string")
        title, text = split_contents(contents)
    elif "text" in obj:
        text = obj["text"]
        if not isinstance(text, str):
            raise RecordError(path, line, "text", "expected a string")
        title = _opt_str(obj, "title", path, line) or ""
    else:
        raise RecordError(path, line, "contents", "missing: a record needs `contents` or `text`")
    meta = {k: v for k, v in obj.items() if k not in _KNOWN and k != "_id"}
    return CorpusDoc(
        id=str(doc_id),
        title=title,
        text=text,
        source=_opt_str(obj, "source", path, line),
        url=_opt_str(obj, "url", path, line),
        meta=meta,
    )


def decode_line(raw: bytes, path: Any, line: int) -> Any:
    """Decode one JSONL line, raising RecordError on bad JSON or bad UTF-8."""
    try:
        return _loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        msg = str(exc).splitlines()[0] if str(exc) else "invalid JSON"
        raise RecordError(path, line, "<json>", f"not valid JSON: {msg}") from None


def is_parquet(path: Path) -> bool:
    """Whether ``path`` names a parquet file (by suffix)."""
    return path.suffix.lower() in (".parquet", ".pq")


def open_binary(path: Path) -> LineReader:
    """Open a (possibly gzipped) JSONL file for binary reading: ``read(n)`` or, iterated,
    ``(line, raw)`` pairs; bad or truncated gzip raises a located :class:`RecordError`."""
    return open_lines(path)


def iter_parquet_rows(path: Path, batch_size: int = 8192) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row_number, dict)`` from a parquet file, batch by batch (1-based rows).

    A file that is not parquet, or whose data cannot be decoded, raises :class:`RecordError`
    (located at the first row not read).
    """
    from searchprime._lazy import require

    pa = require("pyarrow", "core")
    pq = require("pyarrow.parquet", "core")
    row = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            for obj in batch.to_pylist():
                row += 1
                yield row, obj
    except (pa.ArrowException, OSError) as exc:
        raise RecordError(
            path, row + 1 if row else None, "<parquet>", f"cannot read: {first_line(exc, path)}"
        ) from None


class CorpusReader:
    """Iterator over :class:`CorpusDoc`; counts skipped records when ``skip_bad``."""

    def __init__(self, path: str | Path, *, skip_bad: bool = False):
        self.path = Path(path)
        if not self.path.exists():
            raise RecordError(self.path, None, "<file>", "corpus file not found")
        self.skip_bad = skip_bad
        self.skipped = 0
        self.read = 0
        self.errors: list[RecordError] = []  # the first few skipped problems, for reports
        self._it = self._iterate()

    def __iter__(self) -> CorpusReader:
        return self

    def __next__(self) -> CorpusDoc:
        return next(self._it)

    def _bad(self, err: RecordError) -> None:
        if not self.skip_bad:
            raise err
        self.skipped += 1
        if len(self.errors) < 20:
            self.errors.append(err)

    def _iterate(self) -> Iterator[CorpusDoc]:
        if is_parquet(self.path):
            rows: Iterator[tuple[int, Any]] = iter_parquet_rows(self.path)
            for line, obj in rows:
                try:
                    doc = parse_record(obj, self.path, line)
                except RecordError as err:
                    self._bad(err)
                    continue
                self.read += 1
                yield doc
            return
        with open_binary(self.path) as fh:
            for line, raw in fh:
                if not raw.strip():
                    continue
                try:
                    doc = parse_record(decode_line(raw, self.path, line), self.path, line)
                except RecordError as err:
                    self._bad(err)
                    continue
                self.read += 1
                yield doc


def read_corpus(path: str | Path, *, skip_bad: bool = False) -> CorpusReader:
    """Stream the documents of a corpus file (JSONL, ``.jsonl.gz`` or parquet).

    The returned reader is an iterator of :class:`CorpusDoc`; after iterating,
    ``reader.skipped`` is the number of malformed records skipped (``skip_bad=True``).
    """
    return CorpusReader(path, skip_bad=skip_bad)
