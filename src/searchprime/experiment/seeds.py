"""The study repeated over training seeds: one full run per seed, mean ± sd across them.

Each seed's run is an ordinary study folder (``<out>/seed-<s>/``, cached and resumable on its
own, with its own ``report.json`` and ``report.html``); the world and teacher pools do not
depend on the seed, so they are the same in every run. ``<out>/report.json`` holds each seed's
headline numbers and, per model, the mean ± sample sd of EM, F1 and the behavior rates.

With ``seed_models`` (e.g. the headline pair ``[direct-rl, behavior-rl]``) only the first seed
runs the whole study; later seeds run those models and the ones they start from, so the
aggregate holds them (and their ancestors) over every seed and the other arms once. Later seeds
then skip pass@k sampling and the entropy pass too (not aggregated), unless
``seed_exploration``.

A study already run without ``seeds`` becomes the first seed's folder without being redone:
link it as ``<out>/seed-<s>`` (``ln -s ../paper runs/paper-seeds/seed-0``) and run with
``seeds: [s, ...]``; its settings are the per-seed ones (``seed: s``, no ``seeds``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchprime.experiment.config import ExperimentConfig
from searchprime.records import BEHAVIORS, atomic_write_text

__all__ = ["aggregate_claims", "aggregate_seeds", "run_seeds"]

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


def aggregate_claims(reports: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per claim measured in every seed's report: mean ± sd of its EM difference and ratio,
    the values and the verdict per seed."""
    from searchprime.eval.uncertainty import mean_sd

    seeds = sorted(reports)
    by_seed = {s: {c["claim"]: c for c in reports[s].get("claims", [])} for s in seeds}
    out = []
    for key, first in by_seed[seeds[0]].items():
        rows = [by_seed[s].get(key) for s in seeds]
        if any(r is None for r in rows):
            continue
        entry: dict[str, Any] = {k: first[k] for k in ("claim", "statement", "model", "against")}
        for metric in ("delta", "ratio"):
            values = [r[metric] for r in rows]
            if all(v is not None for v in values):
                entry[metric] = {**mean_sd(values).model_dump(), "per_seed": values}
        entry["verdict_per_seed"] = [r["verdict"] for r in rows]
        out.append(entry)
    return out


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
    for i, seed in enumerate(cfg.seeds or [cfg.seed]):
        log(f"== seed {seed} ==")
        later = i > 0 and cfg.seed_models is not None
        update: dict[str, Any] = {
            "seed": seed,
            "seeds": None,
            "only": cfg.seed_models if later else cfg.only,
        }
        if later and not cfg.seed_exploration:
            update["eval"] = cfg.eval.model_copy(update={"samples": 1, "entropy": False})
        one = cfg.model_copy(update=update)
        reports[seed] = run_one(one, out / f"seed-{seed}")
    report = {"name": cfg.name, **aggregate_seeds(reports)}
    report["claims"] = aggregate_claims(reports)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report
