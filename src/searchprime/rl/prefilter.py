"""Zero-variance control: keep the training tasks on which the starting policy's rewards vary.

A GRPO group whose rewards are all equal has zero advantage and teaches nothing; with pass
rate p and group size G that happens with probability p^G + (1-p)^G (0.15 at p = 0.4, G = 4).
:func:`prefilter_tasks` samples ``samples`` episodes per task with the starting policy and
keeps, with ``keep: pass_rate``, the tasks whose pass rate (share of episodes with a positive
weighted reward) lies strictly between ``low`` and ``high``; with ``keep: varied``, the tasks
whose sampled weighted rewards differ -- the same tasks for a 0/1 reward, and the right ones
next to a shaping reward such as ``answered``, where every answered episode "passes". The
result is cached in ``prefilter.json`` so a resumed run trains on the same tasks.
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
    """Return (kept tasks in their order, a card: each task's pass rate and sampled rewards,
    and counts)."""
    pool = tasks[: cfg.max_tasks] if cfg.max_tasks else tasks
    card = json.loads(cache.read_text(encoding="utf-8")) if cache.exists() else None
    # a card of an older version has pass rates only: enough unless the rewards are asked for
    if card is None or (cfg.keep == "varied" and "rewards" not in card):
        runs = [t for t in pool for _ in range(cfg.samples)]
        attempts = [i % cfg.samples for i in range(len(runs))]
        seeds = [1_000_003 * (i + 1) for i in range(len(runs))]
        log(f"prefilter: {len(runs)} episodes ({cfg.samples} per task, {len(pool)} tasks)")
        episodes = runner.run(runs, seeds, attempts)
        got: dict[str, list[float]] = {t.id: [] for t in pool}
        for ep in episodes:
            got[ep.trajectory.task_id].append(weighted_reward(ep.trajectory, rewards))
        card = {
            "samples": cfg.samples,
            "low": cfg.low,
            "high": cfg.high,
            "pass_rate": {k: sum(r > 0 for r in v) / cfg.samples for k, v in got.items()},
            "rewards": got,
        }
    rates, got = card["pass_rate"], card.get("rewards", {})
    if cfg.keep == "varied":
        kept = [t for t in pool if len(set(got.get(t.id, ()))) > 1]
        rule = "sampled rewards differ"
    else:
        kept = [t for t in pool if cfg.low < rates.get(t.id, 0.0) < cfg.high]
        rule = f"pass rate strictly between {cfg.low} and {cfg.high}"
    card["keep"] = cfg.keep
    card["kept"] = len(kept)
    card["sampled_tasks"] = len(pool)
    card["mean_pass_rate"] = sum(rates.values()) / (len(rates) or 1)
    atomic_write_text(cache, json.dumps(card, indent=2) + "\n")
    log(
        f"prefilter: kept {len(kept)} of {len(pool)} tasks ({rule}; mean pass rate "
        f"{card['mean_pass_rate']:.2f})"
    )
    if not kept:
        from searchprime.errors import ConfigError

        raise ConfigError(
            f"prefilter: kept none of {len(pool)} tasks ({rule}): every group would have "
            "zero advantage (raise samples, try keep: varied, or turn the prefilter off)"
        )
    return kept, card
