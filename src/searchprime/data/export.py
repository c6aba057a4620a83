"""Write samples in the formats the field's trainers read.

``trl``
    ``train.jsonl`` in TRL's *conversational prompt-completion* format, one row per assistant
    turn: ``{"prompt": [messages], "completion": [one assistant message]}``. ``trajectory``
    samples are written as their turns (:func:`~searchprime.data.samples.per_turn`): the
    prompt holds the segment so far, earlier outputs and observations included, as context.
    Why this layout: it is the only one a bare ``trl.SFTTrainer`` trains correctly under its
    *default* arguments. TRL 1.x masks the prompt of prompt-completion rows by default
    (``completion_only_loss=None`` means on for them) but trains every token of ``messages``
    rows and of a completion (``assistant_only_loss=False``): observations inside a completion
    or a ``messages`` row would be trained. And chat templates that drop the reasoning of
    earlier assistant turns (Qwen3 keeps ``<think>`` only after the last user message) keep
    it here, because every trained message is the last one. The cost: a trajectory's prefix
    is encoded once per turn. ``samples.jsonl`` (same order) tells which task/attempt/turn
    (and segment) each row is; ``sft_config.yaml`` pins the two loss fields for
    ``trl sft --config`` (they equal TRL's defaults for this layout);
    :func:`searchprime.data.export_check.check_export` counts what TRL would train.

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

from searchprime.data.samples import Sample, per_turn
from searchprime.errors import ConfigError
from searchprime.records import Message, Trajectory, atomic_write_text

__all__ = [
    "VERL_AGENT_NAME",
    "FORMATS",
    "TRL_LOSS_SETTINGS",
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
    """A TRL conversational prompt-completion row (pass one-turn samples: :func:`per_turn`)."""
    return {"prompt": _msgs(sample.prompt), "completion": _msgs(sample.completion)}


#: The SFTConfig fields ``sft_config.yaml`` pins (TRL's defaults for prompt-completion rows).
TRL_LOSS_SETTINGS: dict[str, bool] = {"completion_only_loss": True, "assistant_only_loss": False}

_SFT_CONFIG_HEADER = """\
# trl.SFTConfig fields for train.jsonl beside this file (prompt/completion rows whose
# completion is exactly one assistant turn). They are TRL's defaults for such rows; kept
# explicit so that a config written for `messages` data cannot switch them. Use with
#   trl sft --config sft_config.yaml --dataset_name <this folder> --model_name_or_path <model>
# TRL cuts every row to max_length tokens (default 1024) keeping the start, which cuts or
# drops the completions of long rows: set max_length above your longest row.
"""


def export_trl(samples: list[Sample], out_dir: Path, *, shape: str = "turn") -> dict[str, Any]:
    """Write ``train.jsonl``, ``samples.jsonl`` and ``sft_config.yaml``; return card facts.

    Segments (``shape="trajectory"``, or any sample with several completion messages) are
    written as one row per turn (:func:`per_turn`).
    """
    import yaml

    rows = [
        (s, r)
        for s in samples
        for r in (per_turn(s) if shape == "trajectory" or len(s.completion) > 1 else [s])
    ]
    n = _write_jsonl(out_dir / "train.jsonl", (to_trl(r) for _, r in rows))
    _write_jsonl(
        out_dir / "samples.jsonl",
        (
            {
                "id": r.id,
                "task_id": r.task_id,
                "attempt": r.attempt,
                "turns": r.turns,
                **({"segment": s.id} if r is not s else {}),
            }
            for s, r in rows
        ),
    )
    body = yaml.safe_dump(TRL_LOSS_SETTINGS, sort_keys=False)
    atomic_write_text(out_dir / "sft_config.yaml", _SFT_CONFIG_HEADER + body)
    return {
        "format": "trl",
        "files": ["train.jsonl", "samples.jsonl", "sft_config.yaml"],
        "samples": n,
        **({"segments": len(samples)} if shape == "trajectory" else {}),
        "layout": "prompt-completion, one assistant turn per row",
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

#: The agent-loop name of verl rows: the bundle's ``agent_loop.yaml`` registers our loop under it
#: (``rl.verl`` reads it from here, so ``prime --format verl`` rows and the bundle's agree).
VERL_AGENT_NAME = "searchprime_agent"


def verl_rows(
    trajs: Iterable[Trajectory], *, split: str = "train", ability: str = "fact-reasoning"
) -> list[dict[str, Any]]:
    """One verl RL row per task (first trajectory of each task gives the start prompt), in
    the layout of ``train rl --export-verl``'s rows, so the bundle's agent loop takes them."""
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
                    "answers": list(t.answers),
                },
                "agent_name": VERL_AGENT_NAME,
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
        return export_trl(samples, out, shape=shape)
    if fmt in ("llamafactory-alpaca", "llamafactory-sharegpt"):
        style = fmt.split("-", 1)[1]
        return export_llamafactory(samples, out, style=style, name=name, shape=shape)
    if fmt == "verl":
        return export_verl(trajectories, out, split=split)
    raise ConfigError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
