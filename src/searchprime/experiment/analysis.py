"""How far to trust each model's numbers: CIs, pass@k, entropy, turn budgets, paired tests.

Adds to a model's report row (all optional for readers of ``report.json``):

* ``ci95``: bootstrap 95% CIs of EM and F1 over dev tasks, and of turns, searches and each
  behavior's rate over trajectories;
* ``pass_at_k`` / ``maj_at_k``: from ``eval.samples`` sampled rollouts per task on the first
  ``eval.samples_tasks`` dev tasks (``sampling`` holds the per data source / hops / trap
  breakdown);
* ``entropy``: mean per-token entropy of the policy over its own dev tokens (overall and per
  turn position);
* ``scaling``: EM against the turn budget, replayed from the greedy trajectories;

and ``comparisons`` to the report: each model against the one it starts from (an SFT arm from
``base``, an RL run from its start model, a prompt arm from its model), paired over the same dev
tasks (mean EM difference, paired-bootstrap CI, McNemar's exact p); the paper's claims are
:mod:`searchprime.experiment.claims`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchprime.experiment.config import ExperimentConfig
from searchprime.records import Task, Trajectory

__all__ = [
    "comparisons",
    "em_by_task",
    "entropy_journal",
    "entropy_row",
    "interval_row",
    "legacy_entropy",
    "score_by_task",
    "sampling_row",
]


def score_by_task(trajs: list[Trajectory], tasks: list[Task], metric: str = "em") -> list[float]:
    """``metric`` (em, f1) per task in ``tasks`` order (no scored trajectory counts 0)."""
    by_id = {t.task_id: t for t in trajs}
    out = []
    for task in tasks:
        t = by_id.get(task.id)
        value = getattr(t.scores, metric) if t is not None and t.scores else None
        out.append(float(value or 0.0))
    return out


def em_by_task(trajs: list[Trajectory], tasks: list[Task]) -> list[float]:
    """EM per task in ``tasks`` order (a task without a scored trajectory counts 0)."""
    return score_by_task(trajs, tasks, "em")


def interval_row(
    trajs: list[Trajectory], tasks: list[Task], cfg: ExperimentConfig
) -> dict[str, Any]:
    """``ci95`` (EM, F1, turns, searches, the behavior rates) and the turn-budget ``scaling``
    curve of greedy trajectories."""
    from searchprime.eval.scaling import turn_scaling
    from searchprime.eval.uncertainty import bootstrap_ci
    from searchprime.experiment.summary import behavior_cis

    ev = cfg.eval

    def ci_of(values: list[float]) -> list[float]:
        return list(bootstrap_ci(values, resamples=ev.resamples, seed=cfg.seed))

    ci = {m: ci_of(score_by_task(trajs, tasks, m)) for m in ("em", "f1")}
    if trajs:
        ci["turns"] = ci_of([float(len(t.turns)) for t in trajs])
        ci["searches"] = ci_of([float(t.n_searches) for t in trajs])
        ci.update(behavior_cis(trajs, cfg))
    budgets = sorted({b for b in (1, 2, 4, 6, 8, 10, ev.max_turns) if b <= ev.max_turns})
    points = turn_scaling(trajs, budgets, tasks=tasks, resamples=ev.resamples, seed=cfg.seed)
    return {"ci95": ci, "scaling": [p.model_dump(mode="json") for p in points]}


def sampling_row(trajs: list[Trajectory], tasks: list[Task], cfg: ExperimentConfig) -> dict:
    """``pass_at_k`` / ``maj_at_k`` (mean and CI per k) and the grouped ``sampling`` report."""
    from searchprime.eval.passk import collect_samples, sampling_report

    n = cfg.eval.samples
    samples = collect_samples(trajs, tasks, n=n)
    rep = sampling_report(samples, resamples=cfg.eval.resamples, seed=cfg.seed)
    overall = rep.overall.metrics

    def curve(metric: str) -> dict[str, Any]:
        return {
            str(k): overall[f"{metric}@{k}"].model_dump(mode="json")
            for k in range(1, n + 1)
            if f"{metric}@{k}" in overall
        }

    return {
        "pass_at_k": curve("pass"),
        "maj_at_k": curve("maj"),
        "sampling": rep.model_dump(mode="json"),
    }


def entropy_journal(eval_dir: Path, name: str) -> Path:
    """The per-trajectory journal of model ``name``'s entropy pass."""
    return eval_dir / f"{name}.entropy.jsonl"


def legacy_entropy(eval_dir: Path, name: str) -> Path | None:
    """The whole-pass entropy result of a folder from before the journal (it stands as is),
    or None when the journal rules."""
    whole = eval_dir / f"{name}.entropy.json"
    return whole if whole.exists() and not entropy_journal(eval_dir, name).exists() else None


def entropy_row(
    model_dir: Path,
    trajs: list[Trajectory],
    cfg: ExperimentConfig,
    *,
    journal: Path | None = None,
    on_done: Callable[[int], object] | None = None,
) -> dict:
    """``entropy``: the policy's mean per-token entropy (nats) over its own dev tokens
    (``journal`` and ``on_done``: see :func:`~searchprime.eval.entropy.policy_entropy`)."""
    from searchprime.eval.entropy import policy_entropy

    rep = policy_entropy(model_dir, trajs, device=cfg.eval.device, journal=journal, on_done=on_done)
    return {
        "entropy": {
            "mean": rep.overall.mean,
            "tokens": rep.overall.tokens,
            "by_turn": {str(k): v.mean for k, v in rep.by_turn.items()},
        }
    }


def comparisons(
    per_task: dict[str, list[float]], parents: dict[str, str | None], cfg: ExperimentConfig
) -> list[dict[str, Any]]:
    """Each model against the one it starts from, paired over the same dev tasks."""
    from searchprime.eval.uncertainty import paired

    out = []
    for name, parent in parents.items():
        if parent is None or name not in per_task or parent not in per_task:
            continue
        test = paired(per_task[parent], per_task[name], resamples=cfg.eval.resamples, seed=cfg.seed)
        out.append({"model": name, "against": parent, "metric": "em", **test})
    return out
