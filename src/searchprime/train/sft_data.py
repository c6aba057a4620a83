"""SFT training rows: read and check ``prime --format trl`` output (or ``messages`` rows)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError, RecordError
from searchprime.records import iter_json_lines

__all__ = [
    "data_paths",
    "load_sft_data",
    "load_sft_rows",
    "merge_turn_rows",
    "resolve_data",
    "segment_ids",
]


def data_paths(data: str | Sequence[str]) -> list[str]:
    """The data folders (or files) of an SFT run's ``data``: one, or several trained together."""
    return [data] if isinstance(data, str) else [str(p) for p in data]


def resolve_data(path: str) -> Path:
    """The training file of ``path`` (a `prime --format trl` folder or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "train.jsonl"
    if not p.exists():
        raise ConfigError(f"data: {p} not found (expected `searchprime prime --format trl` output)")
    return p


def _layout(row: dict) -> str:
    """``messages`` or ``prompt-completion``: the two row layouts SFT reads."""
    return "messages" if "messages" in row else "prompt-completion"


def _check_messages(path: Path, line: int, field: str, value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise RecordError(path, line, field, "expected a non-empty list of messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise RecordError(path, line, f"{field}[{i}]", "expected {role, content: str}")
        if m.get("role") not in ("system", "user", "assistant"):
            raise RecordError(path, line, f"{field}[{i}].role", f"unknown role {m.get('role')!r}")


def load_sft_rows(path: str | Path, limit: int | None = None) -> tuple[list[dict], bool]:
    """Read and check training rows; return (rows, needs assistant-only loss)."""
    p = resolve_data(str(path))
    rows: list[dict] = []
    layout = None
    assistant_only = False
    for line, obj in iter_json_lines(p):
        if not obj:
            continue
        this = _layout(obj)
        if layout is None:
            layout = this
        elif this != layout:
            raise RecordError(p, line, "<record>", f"mixes {this} rows with {layout} rows")
        if this == "messages":
            _check_messages(p, line, "messages", obj["messages"])
            rows.append({"messages": obj["messages"]})
            assistant_only = True
        else:
            for key in ("prompt", "completion"):
                if key not in obj:
                    raise RecordError(p, line, key, "missing")
                _check_messages(p, line, key, obj[key])
            if obj["completion"][-1]["role"] != "assistant":
                raise RecordError(p, line, "completion", "must end with an assistant message")
            if any(m["role"] != "assistant" for m in obj["completion"]):
                assistant_only = True
            rows.append({"prompt": obj["prompt"], "completion": obj["completion"]})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise ConfigError(f"data: {p} holds no samples")
    return rows, assistant_only


def load_sft_data(
    data: str | Sequence[str], limit: int | None = None
) -> tuple[list[dict], bool, list[str | None]]:
    """Rows of one or several data folders, in order: (rows, needs assistant-only loss, each
    row's segment). Segments are prefixed by their folder's position, so rows of two folders
    never chain; folders of the two row layouts cannot train together."""
    rows: list[dict] = []
    segments: list[str | None] = []
    assistant_only = False
    first: tuple[Path, str] | None = None
    for i, path in enumerate(data_paths(data)):
        left = None if limit is None else limit - len(rows)
        if left == 0:
            break
        part, needs = load_sft_rows(path, left)
        layout = _layout(part[0])  # load_sft_rows refuses a folder of mixed layouts
        if first is None:
            first = (resolve_data(path), layout)
        elif layout != first[1]:
            raise ConfigError(
                f"data: {resolve_data(path)} holds {layout} rows but {first[0]} holds "
                f"{first[1]} rows; export both with the same `prime --format`"
            )
        rows += part
        assistant_only = assistant_only or needs
        segments += [None if s is None else f"{i}:{s}" for s in segment_ids(path, len(part))]
    return rows, assistant_only, segments


def segment_ids(path: str | Path, n: int) -> list[str | None]:
    """The segment of each of the first ``n`` rows of a ``prime --format trl`` folder (its
    ``samples.jsonl``); None for a row that is a sample of its own, or when unknown."""
    p = Path(path)
    side = p / "samples.jsonl" if p.is_dir() else p.with_name("samples.jsonl")
    if not side.exists():
        return [None] * n
    out: list[str | None] = []
    for _, obj in iter_json_lines(side):
        out.append(obj.get("segment") if isinstance(obj, dict) else None)
        if len(out) == n:
            break
    return out + [None] * (n - len(out))


def _extends(prev: dict, row: dict) -> bool:
    """Whether ``row``'s prompt is ``prev``'s prompt + completion + at least one message more."""
    head = prev["prompt"] + prev["completion"]
    return len(row["prompt"]) > len(head) and row["prompt"][: len(head)] == head


def merge_turn_rows(
    rows: list[dict],
    render: Callable[[list[dict]], str],
    segments: list[str | None] | None = None,
    fits: Callable[[dict], bool] | None = None,
) -> tuple[list[dict], int]:
    """Fold chains of one-turn rows back into one row per segment, where that is lossless.

    ``prime --shape trajectory --format trl`` writes a segment as one row per assistant turn
    (prompt = the segment so far), so that TRL's default completion-only loss never trains an
    observation. Trained with assistant-only loss, the whole segment as one row gives each
    turn the same loss at about a quarter of the tokens. A chain is merged only when
    ``render`` (the chat template) keeps every assistant message of it — a Qwen3-style
    template drops earlier thoughts, and then the one-turn rows are kept as they are.
    With ``segments`` (:func:`segment_ids`), only rows of one exported segment are chained
    (``--shape turn`` rows stay one sample per turn, as asked). Returns the rows and how many
    chains were merged. With ``fits`` (e.g. within max_length), a chain whose merged row does
    not fit stays one-turn rows, so its early turns still train.
    """
    same = segments or [""] * len(rows)
    out: list[dict] = []
    merged = 0
    i = 0
    while i < len(rows):
        j = i
        one_turn = "prompt" in rows[i] and len(rows[i]["completion"]) == 1
        while (
            one_turn
            and same[i] is not None
            and j + 1 < len(rows)
            and same[j + 1] == same[i]
            and _extends(rows[j], rows[j + 1])
        ):
            j += 1
        if j > i:
            first, last = rows[i], rows[j]
            row = {
                "prompt": first["prompt"],
                "completion": last["prompt"][len(first["prompt"]) :] + last["completion"],
            }
            text = render(row["prompt"] + row["completion"])
            kept = all(
                m["content"].strip() in text for m in row["completion"] if m["role"] == "assistant"
            )
            if kept and (fits is None or fits(row)):
                out.append(row)
                merged += 1
                i = j + 1
                continue
        out.extend(rows[i : j + 1])
        i = j + 1
    return out, merged
