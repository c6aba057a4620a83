"""Which weights wrote each evaluation file of a model.

A carried study (:mod:`searchprime.experiment.carry`) trains a model again on another machine
when something still to do needs its weights — its pass@k, say, after its greedy rollouts were
taken on the first machine. The retrained model is the same recipe, not always the same bits (a
machine of another kind, another library version), so a model's report row may join
measurements of two trainings.
Each kind of evaluation file is stamped, when it starts being written, with the id of the
weights that write it (``eval/<name>.weights.json``); the row carries the stamps and the report
says when they differ (:meth:`~searchprime.report.model.ArmSummary.other_trainings`).

The stamps also decide whether an unfinished file may be finished by the weights at hand
(:func:`same_weights`): on one machine kind the runner's SFT is deterministic (two trainings
of the behavior model on two VMs logged the same losses to the last digit, from a base with the
same weights digest), so a model trained again is often the same bits, and its unfinished
evaluation need not start over.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from searchprime.records import atomic_write_text
from searchprime.report.model import EVAL_KINDS
from searchprime.train.fingerprint import file_digest

__all__ = [
    "read_stamps",
    "same_weights",
    "stamp",
    "stamp_file",
    "training_outcome",
    "weights_id",
]

#: Fields of a training's summary that describe the run (where, how fast, resumed or not),
#: not what it made.
_RUN_FIELDS = frozenset(
    {"output_dir", "runtime_s", "tokens_per_s", "resumed_from", "start_step", "steps_run",
     "run_tokens", "run_train_loss"}
)  # fmt: skip


def weights_id(model_dir: Path) -> str | None:
    """A short id of the weights in ``model_dir`` (from the sampled digests of its
    ``*.safetensors``: milliseconds for GBs); None when it holds none."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    digests = {f.name: file_digest(f) for f in files}
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]


def stamp_file(eval_dir: Path, name: str) -> Path:
    """Model ``name``'s stamps: ``{kind: weights id}``."""
    return eval_dir / f"{name}.weights.json"


def read_stamps(eval_dir: Path, name: str) -> dict[str, str]:
    """The stamps of model ``name`` (empty when none: files written before stamping, or a
    stamp file that does not parse)."""
    path = stamp_file(eval_dir, name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if k in EVAL_KINDS and isinstance(v, str)}


def stamp(eval_dir: Path, name: str, kinds: str | tuple[str, ...], model_dir: Path | None) -> None:
    """Record that ``model_dir``'s weights write model ``name``'s ``kinds`` from now on;
    ``model_dir`` None (or without weights) removes the kinds' stamps."""
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    unknown = [k for k in kinds if k not in EVAL_KINDS]
    if unknown:
        raise ValueError(f"unknown evaluation kinds {unknown}; expected some of {EVAL_KINDS}")
    wid = weights_id(model_dir) if model_dir is not None else None
    stamps = read_stamps(eval_dir, name)
    for kind in kinds:
        if wid is None:
            stamps.pop(kind, None)
        else:
            stamps[kind] = wid
    path = stamp_file(eval_dir, name)
    if not stamps:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(stamps, indent=2, sort_keys=True) + "\n")


def same_weights(eval_dir: Path, name: str, kind: str, model_dir: Path) -> bool | None:
    """Whether ``model_dir``'s weights are the ones that stamped model ``name``'s ``kind``;
    None when that kind has no stamp (a file written before stamping, or none yet)."""
    stamped = read_stamps(eval_dir, name).get(kind)
    if stamped is None:
        return None
    return stamped == weights_id(model_dir)


def training_outcome(summary: Path) -> dict[str, object] | None:
    """What a finished training made, as its summary file tells it — steps, tokens, losses or
    rewards to the last digit — without what describes the run; None without a readable
    summary. Two trainings with the same outcome took the same path, step by step."""
    try:
        raw = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    return {k: v for k, v in raw.items() if k not in _RUN_FIELDS}
