"""Agreement of annotators, per behavior: with the teachers' ground truth, or with each other.

Ground truth: a behavior is shown by a trajectory when any of its turns lists it in
``Turn.policy_meta["behaviors"]`` (the scripted teachers log what they really did). The
prediction is ``Trajectory.labels``; an *unknown* prediction counts as "not present" in
precision and recall and is also counted on its own.

Between two annotators (:func:`annotator_agreement`, e.g. the phrase-keyed rules and the
action-grounded annotator on the same trajectories): raw agreement and Cohen's kappa per
behavior, over the trajectories both labelled with a known yes/no.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from searchprime.errors import RecordError
from searchprime.records import BEHAVIORS, BehaviorLabels, Trajectory, read_jsonl

__all__ = [
    "AgreementReport",
    "BehaviorAgreement",
    "PairAgreement",
    "PairReport",
    "agreement",
    "agreement_file",
    "annotator_agreement",
    "cohen_kappa",
    "label_agreement",
    "teacher_truth",
]


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


class PairAgreement(BaseModel):
    """Two annotators on one behavior: the 2x2 table, raw agreement and Cohen's kappa."""

    n: int = 0  # trajectories both annotators judged (yes or no)
    both: int = 0
    neither: int = 0
    only_a: int = 0
    only_b: int = 0
    unknown: int = 0  # trajectories left out: either annotator said unknown
    raw: float | None = None
    kappa: float | None = None  # None when chance agreement is 1 (both constant and equal)


class PairReport(BaseModel):
    """Per-behavior agreement of annotator ``a`` with annotator ``b``."""

    a: str
    b: str
    n: int  # trajectories labelled by both
    unmatched: int  # trajectories labelled by only one of them
    behaviors: dict[str, PairAgreement]


def cohen_kappa(both: int, only_a: int, only_b: int, neither: int) -> float | None:
    """Cohen's kappa of a 2x2 table; None when undefined (chance agreement is 1).

    >>> cohen_kappa(40, 5, 5, 50)
    0.797...
    """
    n = both + only_a + only_b + neither
    if n == 0:
        return None
    observed = (both + neither) / n
    yes_a, yes_b = (both + only_a) / n, (both + only_b) / n
    chance = yes_a * yes_b + (1 - yes_a) * (1 - yes_b)
    if chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def label_agreement(
    pairs: Iterable[tuple[BehaviorLabels, BehaviorLabels]], behaviors: tuple[str, ...] = BEHAVIORS
) -> dict[str, PairAgreement]:
    """Raw agreement and kappa per behavior over pairs of labels of the same trajectories."""
    rows = {b: PairAgreement() for b in behaviors}
    for left, right in pairs:
        for name, row in rows.items():
            ea, eb = left.behaviors.get(name), right.behaviors.get(name)
            if ea is None or eb is None or ea.present is None or eb.present is None:
                row.unknown += 1
                continue
            row.n += 1
            if ea.present and eb.present:
                row.both += 1
            elif ea.present:
                row.only_a += 1
            elif eb.present:
                row.only_b += 1
            else:
                row.neither += 1
    for row in rows.values():
        row.raw = (row.both + row.neither) / row.n if row.n else None
        row.kappa = cohen_kappa(row.both, row.only_a, row.only_b, row.neither)
    return rows


def annotator_agreement(
    a: Iterable[Trajectory], b: Iterable[Trajectory], behaviors: tuple[str, ...] = BEHAVIORS
) -> PairReport:
    """:func:`label_agreement` of two labelled copies of the same trajectories (matched by
    ``(task_id, attempt)``; the last record of a key wins)."""
    left = {t.key: t.labels for t in a if t.labels is not None}
    right = {t.key: t.labels for t in b if t.labels is not None}
    keys = sorted(left.keys() & right.keys())
    names_a = sorted({left[k].annotator for k in keys}) or ["-"]
    names_b = sorted({right[k].annotator for k in keys}) or ["-"]
    return PairReport(
        a=", ".join(names_a),
        b=", ".join(names_b),
        n=len(keys),
        unmatched=len(left.keys() ^ right.keys()),
        behaviors=label_agreement(((left[k], right[k]) for k in keys), behaviors),
    )
