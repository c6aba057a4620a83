"""Uncertainty a run did not record, computed from its trajectories by the ``eval`` modules.

Numbers already in ``report.json`` are never replaced; only what is missing is added, and
each addition is named in ``Report.notes``:

* 95% CIs of EM and F1: percentile bootstrap over tasks (:func:`eval.uncertainty.mean_ci`),
  only when the per-task values reproduce the reported mean (same denominator);
* pass@k / avg@k / maj@k when some task has several attempts (:mod:`eval.passk`);
* paired comparisons (:func:`eval.uncertainty.paired`, McNemar's exact p) of each RL'd
  model with the model its RL started from, and of the first model with each other model,
  on the tasks both ran.
"""

from __future__ import annotations

from collections import defaultdict

from searchprime.eval.metrics import split_golds
from searchprime.eval.score import score_one
from searchprime.records import Trajectory
from searchprime.report.model import Comparison, Report, Value

__all__ = ["RESAMPLES", "add_uncertainty", "per_task"]

#: Bootstrap resamples of the CIs the report computes (seed 0, so reports are reproducible).
RESAMPLES = 2000
_TOL = 1e-9
_RL_SUFFIX = "+rl"


def per_task(trajs: list[Trajectory], metric: str) -> dict[str, float]:
    """``{task_id: mean of metric over its attempts}`` (EM or F1; unanswered = 0)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for t in trajs:
        scores = t.scores or score_one(t, split_golds(t.answers))
        sums[t.task_id].append(getattr(scores, metric) or 0.0)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def _add_cis(report: Report, trajs_by_model: dict[str, list[Trajectory]]) -> None:
    from searchprime.eval.uncertainty import mean_ci

    added, skipped = [], []
    for name, trajs in trajs_by_model.items():
        arm = report.arms.get(name)
        if arm is None or not trajs:
            continue
        for metric in ("em", "f1"):
            value: Value | None = getattr(arm, metric)
            if value is None or value.has_ci:
                continue
            vals = list(per_task(trajs, metric).values())
            if abs(sum(vals) / len(vals) - value.mean) > _TOL:
                skipped.append(f"{name} {metric}")
                continue
            est = mean_ci(vals, resamples=RESAMPLES, seed=0)
            setattr(arm, metric, value.model_copy(update={"lo": est.lo, "hi": est.hi, "n": est.n}))
            added.append(f"{name} {metric}")
    if added:
        report.notes.append(
            f"95% CIs of EM/F1 computed by the report: percentile bootstrap over tasks "
            f"({RESAMPLES} resamples, seed 0) for {', '.join(added)}."
        )
    if skipped:
        report.notes.append(
            "No CI for " + ", ".join(skipped) + ": its trajectories do not reproduce the reported "
            "mean (tasks without a trajectory?)."
        )


def _add_sampling(report: Report, trajs_by_model: dict[str, list[Trajectory]]) -> None:
    from searchprime.eval.passk import collect_samples, sampling_report

    done = []
    for name, trajs in trajs_by_model.items():
        arm = report.arms.get(name)
        attempts = defaultdict(int)
        for t in trajs:
            attempts[t.task_id] += 1
        if arm is None or arm.pass_at_k or max(attempts.values(), default=1) < 2:
            continue
        samples = collect_samples(trajs)
        n = samples[0].n
        ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n} | {n})
        sr = sampling_report(samples, ks, resamples=RESAMPLES, seed=0).overall.metrics
        for prefix, field in (("pass", "pass_at_k"), ("avg", "avg_at_k"), ("maj", "maj_at_k")):
            setattr(
                arm,
                field,
                {k: Value(**sr[f"{prefix}@{k}"].model_dump()) for k in ks},
            )
        done.append(f"{name} (n={n})")
    if done:
        report.notes.append(
            "pass@k / avg@k / maj@k computed by the report from the sampled attempts of "
            + ", ".join(done)
            + " (unbiased estimator; missing attempts count as wrong)."
        )


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    pairs = [(n.removesuffix(_RL_SUFFIX), n) for n in names if n.endswith(_RL_SUFFIX)]
    pairs = [(a, b) for a, b in pairs if a in names]
    plain = [n for n in names if not n.endswith(_RL_SUFFIX)]
    pairs += [(plain[0], other) for other in plain[1:]]
    return pairs


def _add_comparisons(report: Report, trajs_by_model: dict[str, list[Trajectory]]) -> None:
    from searchprime.eval.uncertainty import paired

    names = [n for n in report.arms if trajs_by_model.get(n)]
    for a, b in _pairs(names):
        before, after = per_task(trajs_by_model[a], "em"), per_task(trajs_by_model[b], "em")
        common = sorted(set(before) & set(after))
        if not common:
            continue
        res = paired(
            {k: before[k] for k in common},
            {k: after[k] for k in common},
            resamples=RESAMPLES,
            seed=0,
        )
        report.comparisons.append(
            Comparison(
                a=a,
                b=b,
                metric="em",
                delta=res["delta"],
                lo=res["ci95"][0],
                hi=res["ci95"][1],
                gained=res["gained"],
                lost=res["lost"],
                p_value=res["mcnemar_p"],
                n=res["n"],
                source="computed by the report",
            )
        )
    if report.comparisons:
        report.notes.append(
            "Paired comparisons computed by the report on the tasks both models ran: mean EM "
            f"difference with a paired-bootstrap 95% CI ({RESAMPLES} resamples) and McNemar's "
            "exact p."
        )


def add_uncertainty(report: Report, trajs_by_model: dict[str, list[Trajectory]]) -> None:
    """Fill in the CIs, sampling metrics and comparisons ``report`` lacks (in place)."""
    _add_cis(report, trajs_by_model)
    _add_sampling(report, trajs_by_model)
    if not report.comparisons:
        _add_comparisons(report, trajs_by_model)
