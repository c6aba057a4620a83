"""Task loaders: every supported layout ends as a list of :class:`~searchprime.records.Task`.

Layouts (``fmt``):

* ``bp`` - the Behavior Priming JSON array: ``{id, question, answer, data_source?, ...}`` where
  ``answer`` joins several gold answers with the literal ``<|answer_split|>``. WebWalkerQA files
  share the layout (free-form ``answer``; ``root_url``, ``info``, ... go to ``meta``).
* ``flashrag`` - FlashRAG JSONL: ``{id, question, golden_answers: [...], metadata?}``. In a
  multiple-choice record (``choices: [...]`` with integer ``golden_answers``), each index
  becomes the text of that choice, as FlashRAG's ``get_dataset_answer`` does.
* ``jsonl`` - plain JSONL with Task fields (``answers``) or ``question`` + ``answer``.
* ``csv`` - a header row with ``question`` and ``answer`` or ``answers`` (``id`` optional).
* ``parquet`` - columns as for ``jsonl``.
* ``hf`` - a Hugging Face hub dataset: ``hf:<name>[:split]`` (needs the ``train`` extra).
* ``hfdisk`` - a dataset saved with ``save_to_disk``: ``hfdisk:<dir>[:split]``.

Every malformed record raises :class:`RecordError` as ``file:line: field: problem``; for a
JSON array the line is the line where the record starts. So do files that cannot be read:
bytes that are not UTF-8, bad or truncated gzip (``.jsonl.gz``), a file that is not parquet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from searchprime._lazy import require
from searchprime.errors import ConfigError, RecordError
from searchprime.records import Task, iter_json_lines, validation_to_record_error
from searchprime.records._lines import blame_damaged_gzip, first_line, read_text

__all__ = ["ANSWER_SPLIT", "TASK_FORMATS", "detect_format", "load_tasks", "record_to_task"]

#: The separator the Behavior Priming files put between several gold answers.
ANSWER_SPLIT = "<|answer_split|>"

#: Formats accepted by :func:`load_tasks` (besides ``auto``).
TASK_FORMATS = ("bp", "flashrag", "jsonl", "csv", "parquet", "hf", "hfdisk")

_ANSWER_KEYS = ("answers", "golden_answers", "answer")
_QUESTION_KEYS = ("question", "query")


def detect_format(path: str | Path) -> str:
    """Guess the layout of ``path`` from its prefix or suffix."""
    spec = str(path)
    if spec.startswith("hf:"):
        return "hf"
    if spec.startswith("hfdisk:"):
        return "hfdisk"
    name = Path(spec).name.lower()
    if name.endswith(".json"):
        return "bp"
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    if Path(spec).is_dir():
        return "hfdisk"
    raise ConfigError(
        f"{spec}: cannot tell the task format from the name; pass fmt= one of {TASK_FORMATS}"
    )


def load_tasks(
    path: str | Path,
    fmt: str = "auto",
    limit: int | None = None,
    data_source: str | None = None,
) -> list[Task]:
    """Load tasks from ``path`` (a file, ``hf:<name>[:split]`` or ``hfdisk:<dir>[:split]``).

    ``limit`` keeps the first ``limit`` tasks. Duplicate ids are an error, because a rollout
    resumes by (task id, attempt). ``data_source`` names the benchmark of records that do not
    name one (GAIA, HLE files have none and would score as ``unknown``); a record's own
    ``data_source`` always wins over it.

    >>> tasks = load_tasks("mhqa_sample.json")  # doctest: +SKIP
    >>> tasks[0].answers  # doctest: +SKIP
    ['Frederick V']
    """
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in TASK_FORMATS:
        raise ConfigError(f"unknown task format {fmt!r}; choose one of {TASK_FORMATS} or 'auto'")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if data_source is not None and (not isinstance(data_source, str) or not data_source.strip()):
        raise ConfigError(f"data_source: expected a non-empty name, got {data_source!r}")
    readers = {
        "bp": _iter_json_array,
        "flashrag": _iter_jsonl,
        "jsonl": _iter_jsonl,
        "csv": _iter_csv,
        "parquet": _iter_parquet,
        "hf": _iter_hf,
        "hfdisk": _iter_hf,
    }
    spec = str(path)
    if fmt not in ("hf", "hfdisk") and not Path(spec).exists():
        raise ConfigError(f"{spec}: task file not found")
    tasks: list[Task] = []
    seen: dict[str, int | None] = {}
    try:
        for lineno, obj in readers[fmt](spec):
            if limit is not None and len(tasks) >= limit:
                break
            task = record_to_task(
                obj, spec, lineno, default_id=str(len(tasks)), default_source=data_source
            )
            if task.id in seen:
                first = seen[task.id]
                raise RecordError(
                    spec, lineno, "id", f"duplicate id {task.id!r} (first at line {first})"
                )
            seen[task.id] = lineno
            tasks.append(task)
    except RecordError as exc:
        raise blame_damaged_gzip(exc) from None
    return tasks


def _answers(value: Any, path: str, line: int | None, field: str) -> list[str]:
    if isinstance(value, str):
        parts = value.split(ANSWER_SPLIT)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parts = [str(value)]
    elif isinstance(value, (list, tuple)):
        parts = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise RecordError(
                    path, line, f"{field}.{i}", f"expected a string, got {type(item).__name__}"
                )
            parts.extend(str(item).split(ANSWER_SPLIT))
    else:
        raise RecordError(
            path, line, field, f"expected a string or a list of strings, got {type(value).__name__}"
        )
    answers = [p.strip() for p in parts if p.strip()]
    if not answers:
        raise RecordError(path, line, field, "no gold answer")
    return answers


def _choice_texts(golds: Any, choices: Any, path: str, line: int | None, field: str) -> Any:
    """FlashRAG multiple choice: integer golds index ``choices``; other golds pass unchanged."""
    if not isinstance(choices, list) or not choices:
        return golds
    items = golds if isinstance(golds, list) else [golds]
    out = []
    for i, gold in enumerate(items):
        if isinstance(gold, bool) or not isinstance(gold, int):
            out.append(gold)
            continue
        if not 0 <= gold < len(choices):
            where = f"{field}.{i}" if isinstance(golds, list) else field
            raise RecordError(
                path, line, where, f"choice index {gold} out of range for {len(choices)} choices"
            )
        out.append(choices[gold])
    return out


def record_to_task(
    obj: dict[str, Any],
    path: str | Path,
    line: int | None,
    *,
    default_id: str,
    default_source: str | None = None,
) -> Task:
    """Normalise one raw record of any supported layout into a :class:`Task`.

    ``default_source`` is the data source of a record that names none.
    """
    path = str(path)
    if not isinstance(obj, dict):
        raise RecordError(path, line, "<record>", f"expected an object, got {type(obj).__name__}")
    rest = dict(obj)
    qkey = next((k for k in _QUESTION_KEYS if k in rest), None)
    if qkey is None:
        raise RecordError(path, line, "question", "missing")
    question = rest.pop(qkey)
    if not isinstance(question, str) or not question.strip():
        raise RecordError(path, line, qkey, "expected a non-empty string")
    akey = next((k for k in _ANSWER_KEYS if k in rest and rest[k] is not None), None)
    if akey is None:
        raise RecordError(
            path, line, "answer", "missing (expected answer, answers or golden_answers)"
        )
    golds = _choice_texts(rest.pop(akey), rest.get("choices"), path, line, akey)
    answers = _answers(golds, path, line, akey)
    for key in _ANSWER_KEYS:  # a null alternative answer column is not metadata
        if key in rest and rest[key] is None:
            rest.pop(key)
    raw_id = rest.pop("id", None)
    if raw_id is None:
        raw_id = rest.pop("_id", None)
    if raw_id is None or raw_id == "":
        raw_id = default_id
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise RecordError(
            path, line, "id", f"expected a string or integer, got {type(raw_id).__name__}"
        )
    data_source = rest.pop("data_source", None)
    if data_source is None and "root_url" in rest and isinstance(rest.get("type"), str):
        data_source = rest["type"]  # WebWalkerQA names itself in `type`
    if data_source is not None and not isinstance(data_source, str):
        raise RecordError(path, line, "data_source", "expected a string")
    if data_source is None:
        data_source = default_source
    meta = rest.pop("meta", None)
    if meta is not None and not isinstance(meta, dict):
        raise RecordError(path, line, "meta", "expected an object")
    meta = dict(meta or {})
    meta.update(rest)
    try:
        return Task(
            id=str(raw_id),
            question=question.strip(),
            answers=answers,
            data_source=data_source,
            meta=meta,
        )
    except ValidationError as exc:  # pragma: no cover - the checks above cover the fields
        raise validation_to_record_error(exc, path, line) from None


def _iter_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # a task file is not an append log: a truncated last line is an error, not a crash remnant
    for lineno, obj in iter_json_lines(path, allow_partial_tail=False):
        if obj:
            yield lineno, obj


def _iter_json_array(path: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, record)`` for each element of a JSON array, located by its start line."""
    text = read_text(path)
    decoder = json.JSONDecoder()
    pos, line, counted = 0, 1, 0
    n = len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def line_at(i: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, i)
        counted = i
        return line

    pos = skip(pos)
    if pos >= n:
        raise RecordError(path, 1, "<json>", "empty file (expected a JSON array of tasks)")
    if text[pos] == "{":  # a single object or JSON lines saved as .json
        yield from _iter_jsonl(path)
        return
    if text[pos] != "[":
        raise RecordError(path, line_at(pos), "<json>", "expected a JSON array of tasks")
    pos = skip(pos + 1)
    if pos < n and text[pos] == "]":
        return
    while True:
        start_line = line_at(pos)
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise RecordError(path, exc.lineno, "<json>", f"not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # an over-long integer, deep nesting
            raise RecordError(path, start_line, "<json>", f"not valid JSON ({exc})") from None
        yield start_line, obj
        pos = skip(end)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            return
        raise RecordError(path, line_at(min(pos, n)), "<json>", "expected ',' or ']' in the array")


def _iter_csv(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    dialect = "excel-tab" if path.lower().endswith(".tsv") else "excel"
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), dialect=dialect)
    try:
        if reader.fieldnames is None:
            raise RecordError(path, 1, "<header>", "empty file (expected a header row)")
        if not any(k in reader.fieldnames for k in _QUESTION_KEYS):
            raise RecordError(path, 1, "question", "no question column in the header")
        for row in reader:
            yield reader.line_num, _csv_row(path, reader.line_num, row)
    except csv.Error as exc:  # e.g. an over-long field; it fails before line_num counts it
        raise RecordError(path, reader.line_num + 1, "<csv>", str(exc)) from None


def _csv_row(path: str, lineno: int, row: dict[str | None, Any]) -> dict[str, Any]:
    if None in row:
        raise RecordError(path, lineno, "<row>", "more cells than header columns")
    obj: dict[str, Any] = {k: v for k, v in row.items() if v is not None}
    for key in ("answers", "golden_answers"):
        val = obj.get(key)
        if isinstance(val, str) and val.lstrip().startswith("["):
            try:
                obj[key] = json.loads(val)
            except json.JSONDecodeError:
                raise RecordError(path, lineno, key, "not a valid JSON list") from None
    if obj.get("id", None) == "":
        obj.pop("id")
    return obj


def _iter_rows(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, row in enumerate(rows, start=1):
        yield i, {k: _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    """numpy/arrow scalars and arrays -> plain Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _iter_parquet(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise RecordError(
            path, None, "<parquet>", f"cannot read: {first_line(exc, path)}"
        ) from None
    yield from _iter_rows(table.to_pylist())


def _split_spec(spec: str) -> tuple[str, str | None]:
    body = spec.split(":", 1)[1]
    if ":" in body:
        name, split = body.rsplit(":", 1)
        if split and "/" not in split and "\\" not in split:
            return name, split
    return body, None


def _iter_hf(spec: str) -> Iterator[tuple[int, dict[str, Any]]]:
    datasets = require("datasets", "train")
    name, split = _split_spec(spec)
    try:
        if spec.startswith("hfdisk:"):
            data = datasets.load_from_disk(name)
        else:
            data = datasets.load_dataset(name, split=split)
    except FileNotFoundError as exc:
        raise ConfigError(f"{spec}: dataset not found ({first_line(exc)})") from None
    except Exception as exc:  # datasets raises many kinds of errors for a bad name or file
        if spec.startswith("hfdisk:"):  # a folder that is there but does not read: bad files
            raise RecordError(name, None, "<dataset>", f"cannot load: {first_line(exc)}") from None
        raise ConfigError(f"{spec}: cannot load the dataset: {first_line(exc)}") from None
    if isinstance(data, datasets.DatasetDict):
        if split is None:
            split = "test" if "test" in data else next(iter(data))
        if split not in data:
            raise ConfigError(f"{spec}: no split {split!r}; the dataset has {list(data)}")
        data = data[split]
    row = 0
    try:
        for row, obj in _iter_rows(data):
            yield row, obj
    except (OSError, ValueError) as exc:  # Arrow's read errors are these (ArrowInvalid, ...)
        raise RecordError(name, row + 1, "<dataset>", f"cannot read: {first_line(exc)}") from None
