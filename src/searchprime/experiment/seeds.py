"""The study repeated over training seeds: one full run per seed, mean ± sd across them.

Each seed's run is an ordinary study folder (``<out>/seed-<s>/``, cached and resumable on its
own, with its own ``report.json`` and ``report.html``); the world and teacher pools do not
depend on the seed, so they are the same in every run. ``<out>/report.json`` holds each seed's
headline numbers and, per model, the mean ± sample sd of EM, F1 and the behavior rates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchprime.experiment.config import ExperimentConfig
from searchprime.records import BEHAVIORS, atomic_write_text

__all__ = ["aggregate_seeds", "run_seeds"]

#: Per-model numbers summarised across seeds.
_METRICS = ("em", "f1", "turns", "searches")


def aggregate_seeds(reports: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per model present in every seed's report: mean ± sd of EM, F1, turns, searches and each
    behavior's rate, and the values per seed."""
    from searchprime.eval.uncertainty import mean_sd

    seeds = sorted(reports)
    models = [m for m in reports[seeds[0]]["arms"] if all(m in reports[s]["arms"] for s in seeds)]
    out: dict[str, Any] = {}
    for model in models:
        rows = [reports[s]["arms"][model] for s in seeds]
        entry: dict[str, Any] = {}
        for key in _METRICS:
            values = [float(r[key]) for r in rows]
            entry[key] = {**mean_sd(values).model_dump(), "per_seed": values}
        entry["behavior"] = {}
        for b in BEHAVIORS:
            values = [float(r["behavior"][b]) for r in rows]
            entry["behavior"][b] = {**mean_sd(values).model_dump(), "per_seed": values}
        out[model] = entry
    return {"seeds": seeds, "arms": out}


def run_seeds(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    run_one: Callable[[ExperimentConfig, Path], dict[str, Any]],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``run_one`` the study once per seed of ``cfg.seeds``; write and return the aggregate."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for seed in cfg.seeds or [cfg.seed]:
        log(f"== seed {seed} ==")
        one = cfg.model_copy(update={"seed": seed, "seeds": None})
        reports[seed] = run_one(one, out / f"seed-{seed}")
    report = {"name": cfg.name, **aggregate_seeds(reports)}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report
