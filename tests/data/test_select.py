"""Selection strategies, exact sizes with a seed, dedup and the card."""

from __future__ import annotations

import pytest
from sp_trajs import make_traj, population

from searchprime.data.select import (
    STRATEGIES,
    SelectionConfig,
    SelectionError,
    dedup,
    select_trajectories,
)
from searchprime.errors import ConfigError
from searchprime.records import BEHAVIORS


def sel(strategy: str, n: int | None = None, seed: int = 0, trajs=None, **kw):
    cfg = SelectionConfig(strategy=strategy, n=n, seed=seed, **kw)
    return select_trajectories(population() if trajs is None else trajs, cfg)


def test_registry_names() -> None:
    assert {"behavior", "behavior-incorrect", "correct", "random", "single", "expr", "py"} <= set(
        STRATEGIES
    )


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("behavior", 20),
        ("behavior-incorrect", 10),
        ("correct", 20),
        ("random", 40),
        ("single:adaptive_search", 27),
        ("single:error_recovery", 20),
        ("expr:correct and n_behaviors == 4", 10),
        ("expr:has('adaptive_search') and not correct and n_searches >= 2", 14),
        ("py:sp_trajs_pred:even_task", 20),
    ],
)
def test_strategy_counts(strategy: str, expected: int) -> None:
    got = sel(strategy)
    assert len(got.trajectories) == expected
    assert got.card.counts["selected"] == expected


def test_strategy_semantics() -> None:
    for t in sel("behavior").trajectories:
        assert t.labels.has_all(BEHAVIORS)
    for t in sel("behavior-incorrect").trajectories:
        assert t.labels.has_all(BEHAVIORS) and t.scores.em == 0.0
    for t in sel("correct").trajectories:
        assert t.scores.em == 1.0
    partial = sel("behavior", behaviors=["adaptive_search"])
    assert len(partial.trajectories) == 27


def test_judge_correctness() -> None:
    trajs = population()
    for t in trajs:
        t.scores.judge = t.task_id in {"t1", "t3"}
    assert len(sel("correct", trajs=trajs, correctness="judge").trajectories) == 2
    assert len(sel("correct", trajs=trajs, correctness="em_or_judge").trajectories) == 21


def test_selection_reads_recorded_scores_and_never_rescores() -> None:
    """``correct`` in a selection is eval's verdict on the *recorded* scores: an unscored
    trajectory whose answer matches its gold is still not selected as correct."""
    from searchprime.eval.score import is_correct

    unscored = make_traj("u", em=None)
    unscored.answers = ["Paris"]
    assert unscored.scores is None and is_correct(unscored)  # eval rescores on the fly
    assert sel("expr:correct", trajs=[unscored]).trajectories == []
    assert len(sel("expr:not correct", trajs=[unscored]).trajectories) == 1


def test_selection_error_is_in_the_one_error_tree() -> None:
    import searchprime.data as data
    import searchprime.errors as errors

    assert SelectionError is errors.SelectionError is data.SelectionError
    assert issubclass(SelectionError, errors.SearchPrimeError)


def test_exact_size_seeded() -> None:
    a = sel("behavior", n=8, seed=1)
    b = sel("behavior", n=8, seed=1)
    c = sel("behavior", n=8, seed=2)
    assert len(a.trajectories) == 8
    assert [t.key for t in a.trajectories] == [t.key for t in b.trajectories]
    assert [t.key for t in a.trajectories] != [t.key for t in c.trajectories]
    # arms of equal size from different strategies
    assert len(sel("random", n=8, seed=1).trajectories) == 8
    assert a.card.keys == [t.key for t in a.trajectories]


def test_too_few_is_a_clear_error() -> None:
    with pytest.raises(SelectionError, match=r"kept 10 trajectories.*fewer than n=11"):
        sel("behavior-incorrect", n=11)


def test_missing_labels_or_scores() -> None:
    trajs = population() + [make_traj("x", labelled=False)]
    with pytest.raises(SelectionError, match="needs labels.*behaviors annotate"):
        sel("behavior", trajs=trajs)
    trajs = population() + [make_traj("y", em=None)]
    with pytest.raises(SelectionError, match="needs scores.*searchprime score"):
        sel("correct", trajs=trajs)
    assert len(sel("random", trajs=trajs).trajectories) == 41


def test_errors_and_unanswered_dropped() -> None:
    trajs = population()[:4] + [
        make_traj("e", termination="error"),
        make_traj("m", termination="max_turns"),
    ]
    got = sel("random", trajs=trajs)
    assert got.card.counts == {"read": 6, "usable": 4, "matched": 4, "unique": 4, "selected": 4}
    assert len(sel("random", trajs=trajs, require_answer=False).trajectories) == 5


def test_dedup_same_task_same_actions() -> None:
    a = make_traj("t1", attempt=0, steps=[("search", "Foo  Bar"), ("answer", "x")])
    b = make_traj("t1", attempt=1, steps=[("search", "foo bar"), ("answer", "X")])
    c = make_traj("t1", attempt=2, steps=[("search", "other"), ("answer", "x")])
    d = make_traj("t2", attempt=0, steps=[("search", "foo bar"), ("answer", "x")])
    assert [t.key for t in dedup([a, b, c, d])] == [("t1", 0), ("t1", 2), ("t2", 0)]
    got = sel("random", trajs=[a, b, c, d])
    assert got.card.counts["matched"] == 4 and got.card.counts["selected"] == 3
    assert len(sel("random", trajs=[a, b, c, d], dedup=False).trajectories) == 4


def test_card() -> None:
    card = sel("behavior", n=10, seed=3).card
    assert card.behavior_rates == {b: 1.0 for b in BEHAVIORS}
    assert card.annotators == ["rules:test"]
    assert card.mean_searches == 2.0 and card.mean_turns == 3.0
    assert 0.0 <= card.correct_rate <= 1.0
    text = "\n".join(card.summary_lines())
    assert "funnel: read 40 -> usable 40 -> matched 20 -> unique 20 -> selected 10" in text


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nope", "unknown strategy"),
        ("single", "needs an argument"),
        ("random:3", "takes no argument"),
        ("single:telepathy", "unknown behavior"),
        ("expr:__import__('os')", "unknown name|only has"),
        ("expr:em.__class__", "Attribute is not allowed"),
        ("expr:correct and", "not a valid expression"),
        ("py:no_such_module_xyz:f", "cannot import"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sel(spec)
