"""Test-time scaling from one rollout set: accuracy and pass@k against the turn budget.

A trajectory truncated at a budget of t turns keeps its answer only when the answer came at
turn t or earlier (turns are numbered from 1 and every model call counts, invalid ones
included, as the agent loop counts them); otherwise it counts as unanswered, so wrong.
Replaying one rollout set this way is exact for turns that never saw the budget, and an
approximation otherwise: a run really limited to t turns gets its "turns left" reminder
earlier. Budgets above the rollout's own ``max_turns`` add nothing and are flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from searchprime.eval.passk import collect_samples, per_task
from searchprime.eval.score import is_correct
from searchprime.eval.uncertainty import Estimate, mean_ci
from searchprime.records import Task, Trajectory

__all__ = [
    "DEFAULT_BUDGETS",
    "ScalingPoint",
    "answer_turn",
    "answer_within",
    "correct_within",
    "turn_scaling",
]

#: The turn budgets of the issue's scaling curves.
DEFAULT_BUDGETS: tuple[int, ...] = (2, 4, 6, 8, 10)


def answer_turn(traj: Trajectory) -> int | None:
    """The turn number (from 1) of the turn that gave the final answer; None if none did."""
    if traj.final_answer is None or not traj.final_answer.strip():
        return None
    for turn in traj.turns:
        if turn.action.kind == "answer":
            return turn.index + 1
    return None


def answer_within(traj: Trajectory, budget: int) -> str | None:
    """The final answer if it was given within ``budget`` turns, else None."""
    at = answer_turn(traj)
    return traj.final_answer if at is not None and at <= budget else None


def correct_within(traj: Trajectory, budget: int, metric: str = "auto") -> bool:
    """Correct, with the answer given within ``budget`` turns."""
    return answer_within(traj, budget) is not None and is_correct(traj, metric)


class ScalingPoint(BaseModel):
    """Results at one turn budget."""

    model_config = ConfigDict(extra="forbid")

    budget: int = Field(description="Most turns allowed.")
    accuracy: Estimate = Field(description="Mean correctness of all samples (EM when n = 1).")
    answered: float = Field(description="Share of samples with an answer within the budget.")
    pass_at: dict[int, Estimate] = Field(
        default_factory=dict, description="k -> pass@k at this budget (n > 1 only)."
    )
    beyond_rollout: bool = Field(
        description="The budget exceeds the rollout's max_turns: nothing new can be answered."
    )


def _max_turns(trajs: list[Trajectory]) -> int | None:
    limits = [t.agent.get("max_turns") for t in trajs]
    known = [m for m in limits if isinstance(m, int)]
    return min(known) if known else None


def turn_scaling(
    trajs: Iterable[Trajectory],
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    *,
    tasks: Iterable[Task] | None = None,
    n: int | None = None,
    ks: Sequence[int] | None = None,
    metric: str = "auto",
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> list[ScalingPoint]:
    """Accuracy (and pass@k for each k of ``ks``, default 1..n, when n > 1) per turn budget.

    Denominators as in :func:`~searchprime.eval.passk.collect_samples`: every task of ``tasks``
    counts, and missing samples are wrong. CIs are bootstrap over tasks.
    """
    trajs = list(trajs)
    tasks = list(tasks) if tasks is not None else None
    if any(b < 1 for b in budgets):
        raise ValueError(f"budgets must be >= 1, got {list(budgets)}")
    limit = _max_turns(trajs)
    points = []
    for budget in sorted(set(budgets)):
        samples = collect_samples(
            trajs,
            tasks,
            n=n,
            correct=lambda t, b=budget: correct_within(t, b, metric),
            answer=lambda t, b=budget: answer_within(t, b),
        )
        n_samples = samples[0].n if samples else 1
        kk = sorted(set(ks)) if ks is not None else list(range(1, n_samples + 1))
        ci = {"level": level, "resamples": resamples, "seed": seed}
        total = sum(s.n for s in samples) or 1
        points.append(
            ScalingPoint(
                budget=budget,
                accuracy=mean_ci(per_task(samples, "avg", 1), **ci),
                answered=sum(a is not None for s in samples for a in s.answers) / total,
                pass_at=(
                    {k: mean_ci(per_task(samples, "pass", k), **ci) for k in kk}
                    if n_samples > 1
                    else {}
                ),
                beyond_rollout=limit is not None and budget > limit,
            )
        )
    return points
