"""What a model's dev trajectories say: scores and labels, the report row, degeneracy, the table."""

from __future__ import annotations

from typing import Any

from searchprime.records import BEHAVIORS, Task, Trajectory

#: The report name of a model after RL: ``base+rl``.
RL_SUFFIX = "+rl"


def score_and_label(trajs: list[Trajectory], world: Any) -> list[Trajectory]:
    """Fill EM/F1 scores and rules-annotator labels in place."""
    from searchprime.behaviors.rules import annotate_rules
    from searchprime.eval.score import score_one

    for t in trajs:
        t.scores = score_one(t, t.answers)
        t.labels = annotate_rules(t, world)
    return trajs


def summarize(trajs: list[Trajectory], tasks: list[Task], world: Any) -> dict[str, Any]:
    """EM (over all tasks), valid-turn rate, turns, searches and behavior rates.

    ``behavior_offered`` is each behavior's rate among trajectories whose task offers the
    situation for it (a trap that the behavior answers).
    """
    from searchprime.world import behaviors_offered

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
        "behavior": {},
        "behavior_offered": {},
        "offered_n": {},
    }
    by_id = {t.id: t for t in tasks}
    for b in BEHAVIORS:
        row["behavior"][b] = sum(bool(t.labels and t.labels.has(b)) for t in trajs) / n
        offered = [t for t in trajs if b in behaviors_offered(by_id[t.task_id])]
        row["offered_n"][b] = len(offered)
        row["behavior_offered"][b] = (
            sum(bool(t.labels and t.labels.has(b)) for t in offered) / len(offered)
            if offered
            else None
        )
    return row


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
    """
    rows = []
    arms = report["arms"]
    for name, r in arms.items():
        start = arms.get(name.removesuffix(RL_SUFFIX)) if name.endswith(RL_SUFFIX) else None
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
            row[_SHORT[b]] = f"{r['behavior'][b]:.2f}/" + (
                "-" if offered is None else f"{offered:.2f}"
            )
        rows.append(row)
    return rows
