"""Check an SFT export the way a bare ``trl.SFTTrainer`` (default arguments) trains it.

:func:`check_export` reads an export folder's ``train.jsonl`` and, for a given tokenizer and
its chat template, marks the tokens TRL 1.x trains under its defaults: for prompt-completion
rows every token after the common prefix of the prompt (rendered with the generation prompt)
and the whole conversation (TRL's default completion-only loss); for ``messages`` rows every
token (``assistant_only_loss`` is off by default). It then reports how many trained tokens lie
inside observation messages (any non-assistant message: system prompt, question, search
results) and how many ``<think>`` blocks of the trained assistant messages are still in the
trained text after the chat template (Qwen3's drops them from earlier turns). TRL's
truncation to ``max_length`` is not applied.

>>> report = check_export("data/primed", "Qwen/Qwen3-8B")  # doctest: +SKIP
>>> report.observation_tokens_trained, report.think_blocks_trained == report.think_blocks
(0, True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from searchprime._lazy import require
from searchprime.errors import ConfigError, RecordError
from searchprime.records import iter_json_lines

__all__ = ["ExportCheck", "RowCheck", "check_export", "check_row", "trl_default_mask"]

_THINK = re.compile(r"<think>(.*?)</think>", re.S)


@dataclass
class RowCheck:
    """What one row trains."""

    tokens: int
    trained_tokens: int
    observation_tokens: int
    observation_tokens_trained: int
    think_blocks: int
    think_blocks_trained: int
    unlocated_observations: int


class ExportCheck(BaseModel):
    """What a bare ``trl.SFTTrainer`` would train on an export, summed over its rows."""

    path: str
    layout: str = Field(description="'prompt-completion' or 'messages'.")
    rows: int
    tokens: int
    trained_tokens: int
    observation_tokens: int = Field(description="Tokens of non-assistant messages.")
    observation_tokens_trained: int = Field(description="Of those, tokens carrying a label.")
    think_blocks: int = Field(description="<think> blocks in the assistant messages TRL trains.")
    think_blocks_trained: int = Field(description="Of those, blocks found in the trained text.")
    unlocated_observations: int = Field(
        description="Observations the chat template did not render verbatim (not counted)."
    )

    @property
    def ok(self) -> bool:
        """No observation token trained, every thought kept, every observation located."""
        return (
            self.observation_tokens_trained == 0
            and self.think_blocks_trained == self.think_blocks
            and self.unlocated_observations == 0
        )

    def summary_lines(self) -> list[str]:
        """A short human-readable report."""
        unlocated = self.unlocated_observations
        return [
            f"{self.path}: {self.rows} {self.layout} rows, {self.tokens} tokens, "
            f"{self.trained_tokens} trained",
            f"observation tokens trained: {self.observation_tokens_trained} of "
            f"{self.observation_tokens}" + (f" ({unlocated} not located)" if unlocated else ""),
            f"<think> blocks in the trained text: {self.think_blocks_trained} of "
            f"{self.think_blocks}",
        ]


def _conversation(row: dict[str, Any]) -> tuple[list[dict], int]:
    """All messages of ``row`` and the index of the first one TRL may train."""
    if "messages" in row:
        return list(row["messages"]), 0
    return list(row["prompt"]) + list(row["completion"]), len(row["prompt"])


def trl_default_mask(tokenizer: Any, row: dict[str, Any]) -> tuple[list[int], list[bool]]:
    """``(input_ids, trained)`` of one row as TRL 1.x ``SFTTrainer`` builds them by default."""
    msgs, _ = _conversation(row)
    ids = tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    if "messages" in row:
        return list(ids), [True] * len(ids)
    trl_data = require("trl.data_utils", "train")
    prompt = tokenizer.apply_chat_template(
        list(row["prompt"]), tokenize=True, return_dict=True, add_generation_prompt=True
    )["input_ids"]
    start = trl_data.common_prefix_length(prompt, ids)
    return list(ids), [i >= start for i in range(len(ids))]


def _observation_spans(text: str, msgs: list[dict]) -> tuple[list[tuple[int, int]], int]:
    """Character spans of the non-assistant messages in ``text``, in order; + unlocated count."""
    spans, cursor, missing = [], 0, 0
    for m in msgs:
        if m["role"] == "assistant" or not m["content"]:
            continue
        at = text.find(m["content"], cursor)
        if at < 0:
            missing += 1
            continue
        spans.append((at, at + len(m["content"])))
        cursor = at + len(m["content"])
    return spans, missing


def _trained_text(tokenizer: Any, ids: Sequence[int], trained: Sequence[bool]) -> str:
    """The decoded trained runs, joined by NUL (so no match spans two runs)."""
    runs, run = [], []
    for tok, on in zip(ids, trained, strict=True):
        if on:
            run.append(tok)
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return "\0".join(tokenizer.decode(r) for r in runs)


def _found_thoughts(text: str, thoughts: list[str]) -> int:
    """How many of ``thoughts`` appear, in order, as ``<think>`` + thought in ``text``."""
    found, cursor = 0, 0
    for thought in thoughts:
        want = thought.strip()
        at = text.find("<think>", cursor)
        while at >= 0:
            body = text[at + len("<think>") :]
            if body.lstrip().startswith(want):
                found += 1
                cursor = at + len("<think>") + (len(body) - len(body.lstrip())) + len(want)
                break
            at = text.find("<think>", at + 1)
    return found


def check_row(
    tokenizer: Any,
    row: dict[str, Any],
    input_ids: Sequence[int] | None = None,
    trained: Sequence[bool] | None = None,
) -> RowCheck:
    """Attribute the trained tokens of ``row``.

    ``input_ids``/``trained`` default to :func:`trl_default_mask`; pass a trainer's own
    (``labels != -100``) to check what it really trains.
    """
    msgs, first_trained = _conversation(row)
    if input_ids is None or trained is None:
        input_ids, trained = trl_default_mask(tokenizer, row)
    text = tokenizer.apply_chat_template(msgs, tokenize=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != list(input_ids):
        raise ConfigError(
            "tokenizer: its chat template's tokens differ from its tokens of the rendered "
            "text; the check needs a fast tokenizer whose template tokenizes like its text"
        )
    spans, missing = _observation_spans(text, msgs)
    in_obs = [any(s < b and e > a for a, b in spans) for s, e in enc["offset_mapping"]]
    thoughts = [
        t
        for m in msgs[first_trained:]
        if m["role"] == "assistant"
        for t in _THINK.findall(m["content"])
    ]
    return RowCheck(
        tokens=len(input_ids),
        trained_tokens=sum(1 for t in trained if t),
        observation_tokens=sum(in_obs),
        observation_tokens_trained=sum(1 for o, t in zip(in_obs, trained, strict=True) if o and t),
        think_blocks=len(thoughts),
        think_blocks_trained=_found_thoughts(
            _trained_text(tokenizer, input_ids, trained), thoughts
        ),
        unlocated_observations=missing,
    )


def _rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line, obj in iter_json_lines(path):
        if not obj:
            continue
        if "messages" not in obj and not ("prompt" in obj and "completion" in obj):
            raise RecordError(path, line, "<record>", "expected messages or prompt+completion")
        for key in ("messages", "prompt", "completion"):
            if key in obj and not isinstance(obj[key], list):
                raise RecordError(path, line, key, "expected a list of messages (conversational)")
        rows.append(obj)
    return rows


def check_export(path: str | Path, tokenizer: Any, *, limit: int | None = None) -> ExportCheck:
    """Check an export folder (or its ``train.jsonl``) against ``tokenizer``'s chat template.

    ``tokenizer`` is a tokenizer object or a name/folder for ``AutoTokenizer``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "train.jsonl"
    if not p.exists():
        raise ConfigError(f"{p}: not found (expected a `searchprime prime --format trl` folder)")
    if isinstance(tokenizer, (str, Path)):
        transformers = require("transformers", "train")
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer))
    rows = _rows(p)[:limit]
    if not rows:
        raise ConfigError(f"{p}: holds no rows")
    checks = [check_row(tokenizer, r) for r in rows]
    return ExportCheck(
        path=str(p),
        layout="messages" if "messages" in rows[0] else "prompt-completion",
        rows=len(rows),
        **{
            field: sum(getattr(c, field) for c in checks) for field in RowCheck.__dataclass_fields__
        },
    )
