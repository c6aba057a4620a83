"""Test-time scaling on hand-built trajectories: answers after the budget count as unanswered."""

from __future__ import annotations

import pytest
from tests.data.sp_trajs import make_traj

from searchprime.eval.passk import pass_at_k
from searchprime.eval.scaling import answer_turn, correct_within, turn_scaling
from searchprime.records import Task


def traj(task_id: str, kinds: str, em: float, attempt: int = 0, termination: str = "answer"):
    """``kinds``: one letter per turn, s(earch) / i(nvalid) / a(nswer)."""
    names = {"s": "search", "i": "invalid", "a": "answer"}
    steps = [(names[k], "Paris" if k == "a" else f"q{i}") for i, k in enumerate(kinds)]
    t = make_traj(task_id, attempt=attempt, steps=steps, em=em, termination=termination)
    t.agent = {"max_turns": 5}
    return t


def rollout():
    return [
        traj("t1", "ssa", 1.0),  # right at turn 3
        traj("t2", "a", 1.0),  # right at turn 1
        traj("t3", "ssssa", 0.0),  # wrong at turn 5
        traj("t4", "sssss", 0.0, termination="max_turns"),  # never answered
        traj("t5", "isa", 1.0),  # an invalid turn still counts: right at turn 3
    ]


def test_answer_turn_and_correct_within():
    t1, _, _, t4, t5 = rollout()
    assert answer_turn(t1) == 3 and answer_turn(t4) is None and answer_turn(t5) == 3
    assert not correct_within(t1, 2) and correct_within(t1, 3) and correct_within(t1, 10)
    assert not correct_within(t4, 10)


def test_accuracy_and_answered_rise_with_the_budget():
    points = turn_scaling(rollout(), budgets=[6, 1, 2, 3, 5], resamples=200)
    assert [p.budget for p in points] == [1, 2, 3, 5, 6]
    assert [p.accuracy.mean for p in points] == pytest.approx([0.2, 0.2, 0.6, 0.6, 0.6])
    assert [p.answered for p in points] == pytest.approx([0.2, 0.2, 0.6, 0.8, 0.8])
    assert [p.beyond_rollout for p in points] == [False, False, False, False, True]
    assert all(p.pass_at == {} for p in points)  # one sample per task: accuracy is EM
    assert all(p.accuracy.lo <= p.accuracy.mean <= p.accuracy.hi for p in points)


def test_tasks_without_trajectories_count_wrong():
    tasks = [Task(id=f"t{i}", question="q", answers=["Paris"]) for i in range(1, 9)]
    (point,) = turn_scaling(rollout(), budgets=[3], tasks=tasks, resamples=200)
    assert point.accuracy.mean == pytest.approx(3 / 8) and point.accuracy.n == 8


def test_pass_at_k_per_budget_with_several_samples():
    trajs = [
        traj("a", "a", 0.0, attempt=0),  # wrong at 1
        traj("a", "sssa", 1.0, attempt=1),  # right at 4
        traj("b", "ssa", 1.0, attempt=0),  # right at 3
        traj("b", "ssssa", 1.0, attempt=1),  # right at 5
        traj("c", "sa", 1.0, attempt=0),  # right at 2 (attempt 1 missing: wrong)
    ]
    points = {p.budget: p for p in turn_scaling(trajs, budgets=[2, 4, 6], resamples=200)}
    assert points[2].accuracy.mean == pytest.approx((0 + 0 + 0.5) / 3)
    assert points[4].accuracy.mean == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    assert points[6].accuracy.mean == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert set(points[4].pass_at) == {1, 2}
    assert points[2].pass_at[2].mean == pytest.approx(1 / 3)
    assert points[4].pass_at[2].mean == pytest.approx(1.0)
    assert points[4].pass_at[1].mean == pytest.approx(points[4].accuracy.mean)
    assert points[6].pass_at[2].mean == pytest.approx((1 + 1 + pass_at_k(2, 1, 2)) / 3)
    with pytest.raises(ValueError):
        turn_scaling(trajs, budgets=[0])
