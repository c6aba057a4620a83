"""The step log of a GRPO run (``steps.jsonl``): written by a trainer callback, read back.

One line per logged optimizer step: TRL's metrics (loss, entropy, KL when ``beta > 0``, clip
ratios, ...) under ``trl``, merged with the rollout's statistics for that step
(:func:`~searchprime.rl.rollout.step_stats`) and the step's time split.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from searchprime._lazy import require
from searchprime.records import atomic_write_text

if TYPE_CHECKING:
    from searchprime.rl.rollout import RolloutFunc

__all__ = ["STEPS_FILE", "read_steps", "step_logger", "trim_steps"]

#: Written into the output folder.
STEPS_FILE = "steps.jsonl"


def step_logger(rollout: RolloutFunc, path: Path) -> Any:
    """A ``TrainerCallback`` appending one line per logged step of ``rollout`` to ``path``."""
    transformers = require("transformers", "train")

    class StepLogger(transformers.TrainerCallback):
        """Writes one ``steps.jsonl`` line per logged step: TRL's metrics + rollout stats."""

        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.step_s: dict[int, float] = {}

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.step_s[state.global_step] = time.perf_counter() - self.t0

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
            step = int(state.global_step)
            stats = rollout.pending.pop(step, None)
            if not logs or "train_runtime" in logs or stats is None:
                return
            total = self.step_s.get(step)
            if total is not None:
                t = stats["time"]
                t["step_s"] = round(total, 3)
                t["train_s"] = round(max(0.0, total - t["rollout_s"] - t["sync_s"]), 3)
            row = {"step": step, **stats, "trl": {k: _finite(v) for k, v in logs.items()}}
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    return StepLogger()


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def trim_steps(path: Path, last_step: int) -> None:
    """Drop step-log lines written after the checkpoint a run resumes from."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line)["step"]) <= last_step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def read_steps(path: str | Path) -> list[dict[str, Any]]:
    """The step log of a run (``steps.jsonl``), skipping a line cut by a crash."""
    rows = []
    p = Path(path)
    if p.is_dir():
        p = p / STEPS_FILE
    if not p.exists():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
