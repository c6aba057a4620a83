"""Behavior statistics: rates overall / among correct / among incorrect, and their link to accuracy.

Denominators are explicit: within a run, every rate over "all" uses ``n`` (labelled
trajectories), every rate among correct uses ``n_correct`` and among incorrect ``n_incorrect``,
with ``n = n_correct + n_incorrect``. A behavior judged *unknown* counts as not shown (and is
counted in ``unknown``); trajectories without labels are left out and counted in
``unlabelled``. Correctness is :func:`searchprime.eval.score.is_correct` (the judge when
recorded, else exact match; computed from the stored golds when the file was not scored).
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, Field

from searchprime.eval.metrics import split_golds
from searchprime.eval.score import is_correct, score_one
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl

__all__ = [
    "BehaviorStat",
    "RunStats",
    "StatsReport",
    "compute_run_stats",
    "compute_stats",
    "field_value",
    "pearson",
]


class BehaviorStat(BaseModel):
    """One behavior within one run."""

    present: int = Field(description="Trajectories that show it.")
    present_correct: int
    present_incorrect: int
    unknown: int = Field(description="Trajectories where the annotator could not tell.")
    rate: float = Field(description="present / n")
    rate_correct: float | None = Field(description="present_correct / n_correct")
    rate_incorrect: float | None = Field(description="present_incorrect / n_incorrect")
    acc_with: float | None = Field(description="Accuracy of trajectories that show it.")
    acc_without: float | None = Field(description="Accuracy of trajectories that do not.")
    phi: float | None = Field(description="Correlation (phi) of the behavior with correctness.")
    r_f1: float | None = Field(description="Point-biserial correlation with token F1.")


class RunStats(BaseModel):
    """All statistics of one run (one labelled trajectories file)."""

    run: str
    n: int
    n_correct: int
    n_incorrect: int
    unlabelled: int
    accuracy: float | None
    behaviors: dict[str, BehaviorStat]
    all_present: int = Field(description="Trajectories showing every behavior.")
    all_present_correct: int = Field(description="... of which correct.")
    all_rate: float | None
    all_rate_correct: float | None
    all_rate_incorrect: float | None


class StatsReport(BaseModel):
    """Statistics of one or more runs, comparable side by side."""

    behaviors: list[str]
    runs: list[RunStats]
    correctness: str


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson r (phi for two 0/1 variables, point-biserial for 0/1 vs continuous)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / math.sqrt(sxx * syy)


def _div(a: int, b: int) -> float | None:
    return a / b if b else None


def _f1(traj: Trajectory) -> float:
    scores = traj.scores or score_one(traj, split_golds(traj.answers))
    return scores.f1 or 0.0


def compute_run_stats(
    trajs: list[Trajectory],
    run: str,
    behaviors: tuple[str, ...] = BEHAVIORS,
    correctness: str = "auto",
) -> RunStats:
    """Statistics of one run."""
    labelled = [t for t in trajs if t.labels is not None]
    correct = [is_correct(t, correctness) for t in labelled]
    f1s = [_f1(t) for t in labelled]
    n, n_c = len(labelled), sum(correct)
    n_i = n - n_c
    stats: dict[str, BehaviorStat] = {}
    for name in behaviors:
        shown = [t.labels.has(name) for t in labelled]
        unknown = sum(
            1
            for t in labelled
            if (ev := t.labels.behaviors.get(name)) is None or ev.present is None
        )
        p = sum(shown)
        p_c = sum(1 for s, c in zip(shown, correct, strict=True) if s and c)
        p_i = p - p_c
        x = [float(s) for s in shown]
        stats[name] = BehaviorStat(
            present=p,
            present_correct=p_c,
            present_incorrect=p_i,
            unknown=unknown,
            rate=_div(p, n) or 0.0,
            rate_correct=_div(p_c, n_c),
            rate_incorrect=_div(p_i, n_i),
            acc_with=_div(p_c, p),
            acc_without=_div(n_c - p_c, n - p),
            phi=pearson(x, [float(c) for c in correct]),
            r_f1=pearson(x, f1s),
        )
    all_shown = [t.labels.has_all(list(behaviors)) for t in labelled]
    a = sum(all_shown)
    a_c = sum(1 for s, c in zip(all_shown, correct, strict=True) if s and c)
    return RunStats(
        run=run,
        n=n,
        n_correct=n_c,
        n_incorrect=n_i,
        unlabelled=len(trajs) - n,
        accuracy=_div(n_c, n),
        behaviors=stats,
        all_present=a,
        all_present_correct=a_c,
        all_rate=_div(a, n),
        all_rate_correct=_div(a_c, n_c),
        all_rate_incorrect=_div(a - a_c, n_i),
    )


def _behaviors_of(trajs: list[Trajectory]) -> tuple[str, ...]:
    names: list[str] = []
    for t in trajs:
        if t.labels is not None:
            for name in t.labels.behaviors:
                if name not in names:
                    names.append(name)
    return tuple(names) or BEHAVIORS


def field_value(traj: Trajectory, dotted: str) -> str:
    """``traj`` attribute by dotted path (``policy.name``, ``meta.preset``); '-' when absent."""
    node: object = traj
    for part in dotted.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        else:
            node = getattr(node, part, None)
        if node is None:
            return "-"
    return str(node)


def compute_stats(
    files: list[str | Path],
    *,
    names: list[str] | None = None,
    behaviors: tuple[str, ...] | None = None,
    correctness: str = "auto",
    group_by: str | None = None,
) -> StatsReport:
    """Statistics for each labelled trajectories file (a run or a model).

    ``group_by`` (a dotted field such as ``policy.name``) further splits each file into one
    run per value, named ``<file>:<value>``.
    """
    runs_trajs = [list(read_jsonl(f, Trajectory)) for f in files]
    if behaviors is None:
        behaviors = _behaviors_of([t for ts in runs_trajs for t in ts])
    labels = names or [Path(f).stem for f in files]
    if group_by:
        split_trajs, split_labels = [], []
        for ts, label in zip(runs_trajs, labels, strict=True):
            groups: dict[str, list[Trajectory]] = {}
            for t in ts:
                groups.setdefault(field_value(t, group_by), []).append(t)
            for value in sorted(groups):
                split_trajs.append(groups[value])
                split_labels.append(f"{label}:{value}" if len(files) > 1 else value)
        runs_trajs, labels = split_trajs, split_labels
    runs = [
        compute_run_stats(ts, label, behaviors, correctness)
        for ts, label in zip(runs_trajs, labels, strict=True)
    ]
    return StatsReport(behaviors=list(behaviors), runs=runs, correctness=correctness)
