"""What a model's dev trajectories say: scores and labels, the report row, degeneracy, the table."""

from __future__ import annotations

from typing import Any

from searchprime.experiment.config import RL_SUFFIX
from searchprime.records import BEHAVIORS, Task, Trajectory

__all__ = [
    "RL_SUFFIX",
    "behavior_cis",
    "behavior_rates",
    "degeneracy",
    "failure_row",
    "grounded_row",
    "label_grounded",
    "report_rows",
    "score_and_label",
    "summarize",
]


def score_and_label(trajs: list[Trajectory], world: Any) -> list[Trajectory]:
    """Fill EM/F1 scores and rules-annotator labels in place."""
    from searchprime.behaviors.rules import annotate_rules
    from searchprime.eval.score import score_one

    for t in trajs:
        t.scores = score_one(t, t.answers)
        t.labels = annotate_rules(t, world)
    return trajs


def label_grounded(trajs: list[Trajectory], world: Any) -> list[Trajectory]:
    """Copies of ``trajs`` labelled by the action-grounded annotator (scores kept)."""
    from searchprime.behaviors.grounded import annotate_grounded

    return [t.model_copy(update={"labels": annotate_grounded(t, world)}) for t in trajs]


def behavior_rates(trajs: list[Trajectory], tasks: list[Task]) -> dict[str, Any]:
    """Each behavior's rate over ``trajs`` by their labels: ``behavior`` (overall),
    ``behavior_offered`` (among trajectories whose task offers the situation for it: a trap the
    behavior answers) and ``offered_n``."""
    from searchprime.world import behaviors_offered

    n = len(trajs) or 1
    by_id = {t.id: t for t in tasks}
    row: dict[str, Any] = {"behavior": {}, "behavior_offered": {}, "offered_n": {}}
    for b in BEHAVIORS:
        row["behavior"][b] = sum(_has(t, b) for t in trajs) / n
        offered = [t for t in trajs if b in behaviors_offered(by_id[t.task_id])]
        row["offered_n"][b] = len(offered)
        row["behavior_offered"][b] = (
            sum(_has(t, b) for t in offered) / len(offered) if offered else None
        )
    return row


def _has(traj: Trajectory, behavior: str) -> bool:
    return bool(traj.labels and traj.labels.has(behavior))


def summarize(trajs: list[Trajectory], tasks: list[Task], world: Any) -> dict[str, Any]:
    """EM (over all tasks), valid-turn rate, turns, searches and behavior rates (the labels the
    trajectories carry; see :func:`behavior_rates`)."""
    n_tasks = len(tasks) or 1
    turns = [x for t in trajs for x in t.turns]
    n = len(trajs) or 1
    row: dict[str, Any] = {
        "n": len(trajs),
        "em": sum((t.scores.em or 0.0) for t in trajs if t.scores) / n_tasks,
        "f1": sum((t.scores.f1 or 0.0) for t in trajs if t.scores) / n_tasks,
        "valid_turns": sum(x.action.kind != "invalid" for x in turns) / (len(turns) or 1),
        "answered": sum(t.termination == "answer" for t in trajs) / n,
        "turns": len(turns) / n,
        "searches": sum(t.n_searches for t in trajs) / n,
    }
    row.update(behavior_rates(trajs, tasks))
    row.update(failure_row(trajs, world))
    return row


def failure_row(trajs: list[Trajectory], world: Any) -> dict[str, Any]:
    """``failures``: trajectories per failure mode (see :mod:`searchprime.behaviors.failures`);
    ``repeated_searches``: the fraction of searches that resend an earlier query."""
    from searchprime.behaviors.failures import classify, failure_run
    from searchprime.behaviors.grounded import _Resolver

    res = _Resolver(world) if world is not None else None
    run = failure_run("", (classify(t, world, res) for t in trajs))
    return {"failures": run.modes, "repeated_searches": run.repeat_rate}


def grounded_row(
    rules: list[Trajectory], grounded: list[Trajectory], tasks: list[Task], cfg: Any
) -> dict[str, Any]:
    """``grounded``: the grounded annotator's behavior rates with their CIs; ``agreement``: per
    behavior, how often it agrees with the rules annotator on the same trajectories (raw, Cohen's
    kappa, and the trajectories where only one says yes)."""
    from searchprime.behaviors.agreement import annotator_agreement

    row = behavior_rates(grounded, tasks)
    row["ci95"] = behavior_cis(grounded, cfg)
    pair = annotator_agreement(rules, grounded)
    agreement = {
        b: {
            "raw": a.raw,
            "kappa": a.kappa,
            "n": a.n,
            "only_rules": a.only_a,
            "only_grounded": a.only_b,
        }
        for b, a in pair.behaviors.items()
    }
    return {"grounded": row, "agreement": agreement}


def behavior_cis(trajs: list[Trajectory], cfg: Any) -> dict[str, list[float]]:
    """Bootstrap 95% CI over trajectories of each behavior's overall rate."""
    from searchprime.eval.uncertainty import bootstrap_ci

    if not trajs:
        return {}
    return {
        b: list(
            bootstrap_ci(
                [float(_has(t, b)) for t in trajs], resamples=cfg.eval.resamples, seed=cfg.seed
            )
        )
        for b in BEHAVIORS
    }


def degeneracy(trajs: list[Trajectory], threshold: float = 0.5) -> str | None:
    """Why a model's trajectories look broken (looping, never answering), or None.

    A search repeats when its query (case and spacing aside) was already issued earlier in the
    same trajectory; each rate at or above ``threshold`` is a reason.
    """
    if not trajs:
        return None
    reasons = []
    searches = repeats = 0
    for t in trajs:
        seen: set[str] = set()
        for turn in t.turns:
            if turn.action.kind == "search":
                query = " ".join(turn.action.content.lower().split())
                searches += 1
                repeats += query in seen
                seen.add(query)
    if searches and repeats / searches >= threshold:
        reasons.append(
            f"{repeats / searches:.0%} of its searches repeat a query it already issued on the "
            "same task"
        )
    out_of_turns = sum(t.termination == "max_turns" for t in trajs) / len(trajs)
    if out_of_turns >= threshold:
        reasons.append(f"{out_of_turns:.0%} of its tasks end at the turn limit without an answer")
    turns = [x for t in trajs for x in t.turns]
    invalid = sum(x.action.kind == "invalid" for x in turns) / (len(turns) or 1)
    if invalid >= threshold:
        reasons.append(f"{invalid:.0%} of its turns hold no valid action")
    return "; ".join(reasons) or None


_SHORT = {
    "information_verification": "verify",
    "authority_evaluation": "authority",
    "adaptive_search": "adaptive",
    "error_recovery": "recovery",
}


def _entropy_cell(row: dict[str, Any]) -> str:
    mean = (row.get("entropy") or {}).get("mean")
    return "-" if mean is None else f"{mean:.2f}"


def report_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The report as table rows: one per model, behavior cells 'overall / where offered'.

    ``ΔEM`` is an RL'd model's EM minus the EM of the model its RL started from; ``95% CI`` the
    bootstrap interval of EM over dev tasks; ``H`` the policy's mean per-token entropy (nats).
    When the rows hold grounded labels, ``<behavior>:g`` is the action-grounded annotator's rate
    beside the rules annotator's and ``agree`` the two annotators' mean raw agreement.
    """
    rows = []
    arms = report["arms"]
    grounded = any("grounded" in a for a in arms.values())
    for name, r in arms.items():
        start = arms.get(_rl_start(name, r) or "")
        row = {
            "model": name,
            "n": str(r["n"]),
            "EM": f"{r['em']:.3f}",
            "95% CI": "-" if "ci95" not in r else "{:.2f}-{:.2f}".format(*r["ci95"]["em"]),
            "ΔEM": "-" if start is None else f"{r['em'] - start['em']:+.3f}",
            "F1": f"{r['f1']:.3f}",
            "valid": f"{r['valid_turns']:.3f}",
            "turns": f"{r['turns']:.1f}",
            "srch": f"{r['searches']:.1f}",
            "H": _entropy_cell(r),
        }
        if any("pass_at_k" in a for a in arms.values()):
            k = max((int(x) for a in arms.values() for x in a.get("pass_at_k", {})), default=1)
            cell = r.get("pass_at_k", {}).get(str(k))
            row[f"pass@{k}"] = "-" if cell is None else f"{cell['mean']:.2f}"
        for b in BEHAVIORS:
            offered = r["behavior_offered"][b]
            row[_SHORT[b]] = _rate_cell(r["behavior"][b], offered)
        if grounded:
            g = r.get("grounded")
            for b in BEHAVIORS:
                row[_SHORT[b] + ":g"] = (
                    "-" if g is None else _rate_cell(g["behavior"][b], g["behavior_offered"][b])
                )
            raw = [a["raw"] for a in (r.get("agreement") or {}).values() if a["raw"] is not None]
            row["agree"] = f"{sum(raw) / len(raw):.2f}" if raw else "-"
        rows.append(row)
    return rows


def _rl_start(name: str, row: dict[str, Any]) -> str | None:
    """The model an RL'd model started from (None for a model not trained by RL)."""
    if "rl" in row and row.get("parent"):
        return row["parent"]
    return name.removesuffix(RL_SUFFIX) if name.endswith(RL_SUFFIX) else None


def _rate_cell(overall: float, offered: float | None) -> str:
    return f"{overall:.2f}/" + ("-" if offered is None else f"{offered:.2f}")
