"""What a GRPO run did (``searchprime_rl.json``), summarised from its step log."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from searchprime.rl.config import RLRunConfig
from searchprime.rl.steps import read_steps

__all__ = ["SUMMARY_FILE", "RLSummary", "summarize"]

#: Written into the output folder.
SUMMARY_FILE = "searchprime_rl.json"


class RLSummary(BaseModel):
    """What a run did (``searchprime_rl.json``)."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str
    base_model: str
    tasks: int
    sampler: str
    rewards: dict[str, float]
    steps: int
    episodes: int
    reward_first: float | None
    reward_last: float | None
    em_first: float | None
    em_last: float | None
    zero_std_groups: float | None
    runtime_s: float
    resumed_from: str | None
    prefilter: dict[str, Any] | None = None


def summarize(
    cfg: RLRunConfig, out: Path, n_tasks: int, sampler: str, steps: int, runtime: float
) -> RLSummary:
    """The summary of the run in ``out``: first/last reward and EM over up to 3 logged steps."""
    rows = read_steps(out)

    def mean_of(key: str, part: list[dict[str, Any]]) -> float | None:
        vals = [r[key] for r in part if r.get(key) is not None]
        return statistics.fmean(vals) if vals else None

    k = max(1, min(3, len(rows) // 2))
    head, tail = rows[:k], rows[-k:]
    return RLSummary(
        output_dir=str(out),
        base_model=cfg.model,
        tasks=n_tasks,
        sampler=sampler,
        rewards=cfg.rewards,
        steps=steps,
        episodes=sum(r.get("episodes", 0) for r in rows),
        reward_first=mean_of("reward_mean", head),
        reward_last=mean_of("reward_mean", tail),
        em_first=mean_of("em", head),
        em_last=mean_of("em", tail),
        zero_std_groups=mean_of("zero_std_groups", rows),
        runtime_s=round(runtime, 1),
        resumed_from=None,
    )
