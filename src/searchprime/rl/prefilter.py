"""Zero-variance control: keep the training tasks the starting policy sometimes solves.

A GRPO group whose rewards are all equal has zero advantage and teaches nothing; with pass
rate p and group size G that happens with probability p^G + (1-p)^G (0.15 at p = 0.4, G = 4).
:func:`prefilter_tasks` samples ``samples`` episodes per task with the starting policy and
keeps the tasks whose pass rate (share of episodes with a positive weighted reward) lies
strictly between ``low`` and ``high``. The result is cached in ``prefilter.json`` so a resumed
run trains on the same tasks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchprime.records import Task, atomic_write_text
from searchprime.rl.config import PrefilterSettings
from searchprime.rl.episodes import EpisodeRunner
from searchprime.rl.rewards import weighted_reward

__all__ = ["prefilter_tasks"]


def prefilter_tasks(
    tasks: list[Task],
    runner: EpisodeRunner,
    cfg: PrefilterSettings,
    rewards: dict[str, float],
    cache: Path,
    *,
    log: Callable[[str], None] = lambda _m: None,
) -> tuple[list[Task], dict[str, Any]]:
    """Return (kept tasks in their order, a card: pass-rate histogram and counts)."""
    pool = tasks[: cfg.max_tasks] if cfg.max_tasks else tasks
    if cache.exists():
        card = json.loads(cache.read_text(encoding="utf-8"))
        rates = card["pass_rate"]
    else:
        runs = [t for t in pool for _ in range(cfg.samples)]
        attempts = [i % cfg.samples for i in range(len(runs))]
        seeds = [1_000_003 * (i + 1) for i in range(len(runs))]
        log(f"prefilter: {len(runs)} episodes ({cfg.samples} per task, {len(pool)} tasks)")
        episodes = runner.run(runs, seeds, attempts)
        rates = {t.id: 0.0 for t in pool}
        for ep in episodes:
            rates[ep.trajectory.task_id] += float(weighted_reward(ep.trajectory, rewards) > 0)
        rates = {k: v / cfg.samples for k, v in rates.items()}
        card = {"samples": cfg.samples, "low": cfg.low, "high": cfg.high, "pass_rate": rates}
    kept = [t for t in pool if cfg.low < rates.get(t.id, 0.0) < cfg.high]
    card["kept"] = len(kept)
    card["sampled_tasks"] = len(pool)
    card["mean_pass_rate"] = sum(rates.values()) / (len(rates) or 1)
    atomic_write_text(cache, json.dumps(card, indent=2) + "\n")
    log(
        f"prefilter: kept {len(kept)} of {len(pool)} tasks (pass rate strictly between "
        f"{cfg.low} and {cfg.high}; mean pass rate {card['mean_pass_rate']:.2f})"
    )
    if not kept:
        from searchprime.errors import ConfigError

        raise ConfigError(
            f"prefilter: no task of {len(pool)} has a pass rate in ({cfg.low}, {cfg.high}); "
            "every group would have zero advantage (raise samples or turn the prefilter off)"
        )
    return kept, card
