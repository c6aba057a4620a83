"""Write samples in the formats the field's trainers read.

``trl``
    ``train.jsonl`` in TRL's *conversational prompt-completion* format:
    ``{"prompt": [messages], "completion": [messages]}``. TRL 1.x ``SFTTrainer`` trains it
    with ``completion_only_loss`` (its default for prompt-completion data), so no prompt token
    carries a label, with any chat template. Whole-trajectory samples also hold observations
    (user messages) inside the completion; train them with ``assistant_only_loss=True`` as
    well (TRL then keeps a label only where both masks agree) — ``searchprime train sft`` does
    this by itself. ``samples.jsonl`` (same order) tells which task/attempt/turns each row is.
    We did not choose the ``messages`` format: TRL's assistant-only loss would then train every
    assistant message of the context too, including earlier turns and invalid outputs.

``llamafactory-alpaca`` / ``llamafactory-sharegpt``
    ``data.json`` + the ``dataset_info.json`` entry LLaMA-Factory needs. LLaMA-Factory trains
    every assistant turn of ``history``/``conversations`` unless ``mask_history: true``:
    for ``turn`` samples set ``mask_history: true`` (only the last response trains); for
    ``trajectory`` samples leave it off, and samples whose prompt already holds assistant
    messages (segments after an invalid turn) are dropped, since they cannot be masked there.

``verl``
    ``<split>.parquet`` in verl's RL row layout, one row per task: ``data_source``, ``prompt``
    (the chat the agent starts from), ``ability``, ``reward_model {style: rule, ground_truth:
    {target: [answers]}}`` (as Search-R1's ``qa_em`` reward reads it), ``extra_info``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from searchprime.data.samples import Sample
from searchprime.errors import ConfigError
from searchprime.records import Message, Trajectory, atomic_write_text

__all__ = [
    "FORMATS",
    "export_llamafactory",
    "export_samples",
    "export_trl",
    "export_verl",
    "to_alpaca",
    "to_sharegpt",
    "to_trl",
    "verl_rows",
]

FORMATS: tuple[str, ...] = ("trl", "llamafactory-alpaca", "llamafactory-sharegpt", "verl")


def _msgs(messages: Iterable[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def to_trl(sample: Sample) -> dict[str, Any]:
    """A TRL conversational prompt-completion row."""
    return {"prompt": _msgs(sample.prompt), "completion": _msgs(sample.completion)}


def export_trl(samples: list[Sample], out_dir: Path) -> dict[str, Any]:
    """Write ``train.jsonl`` (+ ``samples.jsonl`` ids); return facts for the card."""
    n = _write_jsonl(out_dir / "train.jsonl", (to_trl(s) for s in samples))
    _write_jsonl(
        out_dir / "samples.jsonl",
        (
            {"id": s.id, "task_id": s.task_id, "attempt": s.attempt, "turns": s.turns}
            for s in samples
        ),
    )
    observations = any(m.role != "assistant" for s in samples for m in s.completion)
    return {
        "format": "trl",
        "files": ["train.jsonl", "samples.jsonl"],
        "samples": n,
        "assistant_only_loss_needed": observations,
    }


# --------------------------------------------------------------------------- LLaMA-Factory


def _split_system(sample: Sample) -> tuple[str, list[Message]]:
    msgs = sample.prompt + sample.completion
    system = ""
    if msgs and msgs[0].role == "system":
        system, msgs = msgs[0].content, msgs[1:]
    return system, msgs


def _alternates(msgs: list[Message]) -> bool:
    if not msgs or len(msgs) % 2:
        return False
    return all(m.role == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(msgs))


def _usable_for_llamafactory(sample: Sample, trains_history: bool) -> bool:
    _, msgs = _split_system(sample)
    if not _alternates(msgs):
        return False
    # With history trained, an assistant message inside the prompt would be trained too.
    return not (trains_history and any(m.role == "assistant" for m in sample.prompt))


def to_sharegpt(sample: Sample) -> dict[str, Any]:
    """A LLaMA-Factory sharegpt row (``conversations`` of human/gpt, ``system``)."""
    system, msgs = _split_system(sample)
    tag = {"user": "human", "assistant": "gpt"}
    return {
        "conversations": [{"from": tag[m.role], "value": m.content} for m in msgs],
        "system": system,
    }


def to_alpaca(sample: Sample) -> dict[str, Any]:
    """A LLaMA-Factory alpaca row (``instruction``/``input``/``output``/``system``/``history``)."""
    system, msgs = _split_system(sample)
    pairs = [[msgs[i].content, msgs[i + 1].content] for i in range(0, len(msgs) - 2, 2)]
    return {
        "instruction": msgs[-2].content,
        "input": "",
        "output": msgs[-1].content,
        "system": system,
        "history": pairs,
    }


def export_llamafactory(
    samples: list[Sample], out_dir: Path, *, style: str, name: str, shape: str
) -> dict[str, Any]:
    """Write ``data.json`` and ``dataset_info.json`` for LLaMA-Factory (alpaca or sharegpt)."""
    trains_history = shape == "trajectory"
    kept = [s for s in samples if _usable_for_llamafactory(s, trains_history)]
    convert = to_alpaca if style == "alpaca" else to_sharegpt
    rows = [convert(s) for s in kept]
    atomic_write_text(out_dir / "data.json", json.dumps(rows, ensure_ascii=False, indent=1))
    if style == "alpaca":
        entry: dict[str, Any] = {
            "file_name": "data.json",
            "formatting": "alpaca",
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
                "system": "system",
                "history": "history",
            },
        }
    else:
        entry = {
            "file_name": "data.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
            },
        }
    atomic_write_text(out_dir / "dataset_info.json", json.dumps({name: entry}, indent=2) + "\n")
    return {
        "format": f"llamafactory-{style}",
        "files": ["data.json", "dataset_info.json"],
        "dataset_name": name,
        "samples": len(rows),
        "dropped_unmaskable": len(samples) - len(kept),
        "llamafactory_mask_history": not trains_history,
    }


# --------------------------------------------------------------------------- verl


def verl_rows(
    trajs: Iterable[Trajectory], *, split: str = "train", ability: str = "fact-reasoning"
) -> list[dict[str, Any]]:
    """One verl RL row per task (first trajectory of each task gives the start prompt)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for t in trajs:
        if t.task_id in seen or not t.turns:
            continue
        seen.add(t.task_id)
        first = t.turns[0]
        prompt = [t.messages[i] for i in first.context if 0 <= i < len(t.messages)]
        rows.append(
            {
                "data_source": t.data_source or "searchprime",
                "prompt": _msgs(prompt),
                "ability": ability,
                "reward_model": {"style": "rule", "ground_truth": {"target": list(t.answers)}},
                "extra_info": {
                    "split": split,
                    "index": len(rows),
                    "task_id": t.task_id,
                    "question": t.question,
                },
            }
        )
    return rows


def export_verl(trajs: Iterable[Trajectory], out_dir: Path, *, split: str = "train") -> dict:
    """Write ``<split>.parquet`` in verl's RL row layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = verl_rows(trajs, split=split)
    path = out_dir / f"{split}.parquet"
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)
    return {"format": "verl", "files": [path.name], "rows": len(rows)}


def export_samples(
    fmt: str,
    out_dir: str | Path,
    *,
    samples: list[Sample],
    trajectories: list[Trajectory],
    shape: str,
    name: str = "searchprime",
    split: str = "train",
) -> dict[str, Any]:
    """Dispatch on ``fmt`` (one of :data:`FORMATS`); return facts for the selection card."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "trl":
        return export_trl(samples, out)
    if fmt in ("llamafactory-alpaca", "llamafactory-sharegpt"):
        style = fmt.split("-", 1)[1]
        return export_llamafactory(samples, out, style=style, name=name, shape=shape)
    if fmt == "verl":
        return export_verl(trajectories, out, split=split)
    raise ConfigError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
