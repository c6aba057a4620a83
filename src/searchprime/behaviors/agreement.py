"""Agreement of an annotator with the sandbox teachers' ground truth, per behavior.

Ground truth: a behavior is shown by a trajectory when any of its turns lists it in
``Turn.policy_meta["behaviors"]`` (the scripted teachers log what they really did). The
prediction is ``Trajectory.labels``; an *unknown* prediction counts as "not present" in
precision and recall and is also counted on its own.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from searchprime.errors import RecordError
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl

__all__ = ["AgreementReport", "BehaviorAgreement", "agreement", "agreement_file", "teacher_truth"]


class BehaviorAgreement(BaseModel):
    """Confusion counts and scores for one behavior."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    unknown: int = 0
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int = 0  # trajectories where the teacher showed it


class AgreementReport(BaseModel):
    """Per-behavior agreement over ``n`` trajectories."""

    annotator: str
    n: int
    unlabelled: int
    behaviors: dict[str, BehaviorAgreement]


def teacher_truth(traj: Trajectory) -> set[str] | None:
    """Behaviors the teacher logged, or None when the trajectory carries no teacher log."""
    logged = [t.policy_meta["behaviors"] for t in traj.turns if "behaviors" in t.policy_meta]
    if not logged:
        return None
    return {b for names in logged for b in (names or [])}


def agreement(trajs: list[Trajectory], behaviors: tuple[str, ...] = BEHAVIORS) -> AgreementReport:
    """Precision/recall/F1 of ``traj.labels`` against teacher truth, per behavior."""
    rows: dict[str, BehaviorAgreement] = {b: BehaviorAgreement() for b in behaviors}
    n = unlabelled = 0
    annotators: set[str] = set()
    for traj in trajs:
        truth = teacher_truth(traj)
        if truth is None:
            continue
        if traj.labels is None:
            unlabelled += 1
            continue
        n += 1
        annotators.add(traj.labels.annotator)
        for name in behaviors:
            row = rows[name]
            ev = traj.labels.behaviors.get(name)
            if ev is None or ev.present is None:
                row.unknown += 1
            pred, gold = bool(ev and ev.present), name in truth
            row.support += gold
            if pred and gold:
                row.tp += 1
            elif pred:
                row.fp += 1
            elif gold:
                row.fn += 1
            else:
                row.tn += 1
    for row in rows.values():
        row.precision = row.tp / (row.tp + row.fp) if row.tp + row.fp else None
        row.recall = row.tp / (row.tp + row.fn) if row.tp + row.fn else None
        p, r = row.precision or 0.0, row.recall or 0.0
        row.f1 = (
            2 * p * r / (p + r) if (p + r) else (None if row.support == 0 and row.fp == 0 else 0.0)
        )
    return AgreementReport(
        annotator=", ".join(sorted(annotators)) or "-", n=n, unlabelled=unlabelled, behaviors=rows
    )


def agreement_file(labelled: str | Path, behaviors: tuple[str, ...] = BEHAVIORS) -> AgreementReport:
    """:func:`agreement` over a labelled trajectories file; errors if it has no teacher log."""
    trajs = list(read_jsonl(labelled, Trajectory))
    report = agreement(trajs, behaviors)
    if report.n == 0 and report.unlabelled == 0:
        raise RecordError(
            labelled,
            None,
            "turns.policy_meta.behaviors",
            "no trajectory carries teacher ground truth (only sandbox teacher rollouts do)",
        )
    return report
