"""pass@k / avg@k / maj@k against brute force over all k-subsets; grouping from trajectories."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from itertools import combinations
from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.data.sp_trajs import make_traj

from searchprime.eval.metrics import normalize_answer
from searchprime.eval.passk import (
    avg_at_k,
    collect_samples,
    maj_at_k,
    pass_at_k,
    per_task,
    sampling_report,
)
from searchprime.records import Task


def brute_pass(n: int, c: int, k: int) -> float:
    correct = [i < c for i in range(n)]
    subsets = list(combinations(range(n), k))
    return sum(any(correct[i] for i in s) for s in subsets) / len(subsets)


def brute_avg(n: int, c: int, k: int) -> float:
    subsets = list(combinations(range(n), k))
    return sum(sum(i < c for i in s) / k for s in subsets) / len(subsets)


def brute_maj(answers: list[str | None], correct: list[bool], k: int) -> Fraction:
    """Majority vote of every k-subset, ties split evenly; an answer's correctness is the share
    of all samples with that normalised answer that are correct."""
    keys = [normalize_answer(a) if a is not None else "" for a in answers]
    share = {
        key: Fraction(
            sum(c for kk, c in zip(keys, correct, strict=True) if kk == key), keys.count(key)
        )
        for key in set(keys)
        if key
    }
    total = Fraction(0)
    subsets = list(combinations(range(len(answers)), k))
    for s in subsets:
        votes = Counter(keys[i] for i in s if keys[i])
        if not votes:
            continue
        top = max(votes.values())
        tied = [key for key, v in votes.items() if v == top]
        total += sum((share[key] for key in tied), Fraction(0)) / len(tied)
    return total / len(subsets)


def test_pass_and_avg_match_brute_force_on_every_small_case():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_pass(n, c, k), abs=1e-12)
                assert avg_at_k(n, c, k) == pytest.approx(brute_avg(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_are_huge():
    n, c, k = 1000, 3, 500
    exact = 1 - Fraction(comb(n - c, k), comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(n, 0, k) == 0.0
    assert pass_at_k(n, n - k + 1, k) == 1.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        maj_at_k(["x"], [True, False], 1)


ANSWERS = st.sampled_from(["Paris", "paris!", "Lyon", "the Nice", "Nice", "", "the", None])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(ANSWERS, st.booleans()), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=8),
)
def test_maj_at_k_matches_brute_force(samples, k):
    answers = [a for a, _ in samples]
    correct = [c for _, c in samples]
    k = min(k, len(samples))
    assert maj_at_k(answers, correct, k) == pytest.approx(
        float(brute_maj(answers, correct, k)), abs=1e-12
    )


def test_maj_at_k_ties_and_silent_samples():
    # a 1-1 tie is broken at random: half the time the correct answer wins
    assert maj_at_k(["x", "y"], [True, False], 2) == 0.5
    # samples without an answer (or one that normalises to nothing) do not vote
    assert maj_at_k([None, "the", "Paris"], [False, False, True], 2) == pytest.approx(2 / 3)
    assert maj_at_k([None, None], [False, False], 2) == 0.0
    # two wrong votes beat one right vote once all three are drawn
    assert maj_at_k(["Lyon", "lyon", "Paris"], [False, False, True], 3) == 0.0
    assert maj_at_k(["Lyon", "lyon", "Paris"], [False, False, True], 1) == pytest.approx(1 / 3)


def test_maj_at_k_handles_many_samples_exactly():
    answers = ["Paris"] * 13 + ["Lyon"] * 12 + [None] * 7
    correct = [True] * 13 + [False] * 19
    got = maj_at_k(answers, correct, 16)  # C(32, 16) = 6e8 subsets: no enumeration
    # the same expectation over the vote counts drawn (multivariate hypergeometric)
    want = Fraction(0)
    for xp in range(14):
        for xl in range(13):
            xn = 16 - xp - xl
            if not 0 <= xn <= 7:
                continue
            win = Fraction(1) if xp > xl else Fraction(1, 2) if xp == xl > 0 else Fraction(0)
            want += comb(13, xp) * comb(12, xl) * comb(7, xn) * win
    assert got == pytest.approx(float(want / comb(32, 16)), abs=1e-12)
    # symmetric counts give exactly one half by symmetry
    sym = maj_at_k(["Paris"] * 10 + ["Lyon"] * 10, [True] * 10 + [False] * 10, 10)
    assert sym == pytest.approx(0.5, abs=1e-12)


def samples_of(task_id: str, outcomes: list[tuple[str, float]], **kw):
    return [
        make_traj(task_id, attempt=i, answer=ans, em=em, **kw)
        for i, (ans, em) in enumerate(outcomes)
    ]


def test_collect_samples_pads_missing_attempts_and_tasks():
    trajs = samples_of("t1", [("Paris", 1.0), ("Lyon", 0.0), ("Paris", 1.0)])
    trajs += samples_of("t2", [("Rome", 0.0)])
    trajs[-1].data_source = "nq"
    tasks = [
        Task(id="t1", question="q", answers=["Paris"], meta={"hops": 2, "traps": ["alias"]}),
        Task(id="t2", question="q", answers=["Oslo"], data_source="nq", meta={"hops": 1}),
        Task(id="t3", question="q", answers=["Bern"], data_source="hotpotqa", meta={"hops": 3}),
    ]
    out = {s.task_id: s for s in collect_samples(trajs, tasks)}
    assert [s.n for s in out.values()] == [3, 3, 3]
    assert out["t1"].correct == (True, False, True)
    assert out["t1"].answers == ("Paris", "Lyon", "Paris")
    assert (out["t1"].hops, out["t1"].traps, out["t1"].data_source) == (2, ("alias",), "sandbox")
    assert out["t2"].correct == (False, False, False)  # one attempt + two missing ones
    assert out["t2"].answers == ("Rome", None, None)
    assert out["t3"].correct == (False,) * 3 and out["t3"].data_source == "hotpotqa"
    # n below the attempts: the first n attempts by index count
    two = {s.task_id: s for s in collect_samples(trajs[::-1], tasks, n=2)}
    assert two["t1"].correct == (True, False)


def test_collect_samples_keeps_the_last_record_of_a_repeated_attempt():
    trajs = samples_of("t1", [("Lyon", 0.0)]) + samples_of("t1", [("Paris", 1.0)])
    (only,) = collect_samples(trajs)
    assert (only.correct, only.answers) == ((True,), ("Paris",))


def test_sampling_report_groups_and_values():
    trajs = (
        samples_of("a", [("Paris", 1.0), ("Lyon", 0.0), ("Paris", 1.0), ("Nice", 0.0)])
        + samples_of("b", [("Lyon", 0.0), ("Lyon", 0.0), ("Paris", 1.0), ("Nice", 0.0)])
        + samples_of("c", [("Oslo", 0.0)] * 4)
    )
    tasks = [
        Task(id="a", question="q", answers=["x"], meta={"hops": 1, "traps": []}),
        Task(id="b", question="q", answers=["x"], meta={"hops": 2, "traps": ["alias", "conflict"]}),
        Task(id="c", question="q", answers=["x"], meta={"hops": 2, "traps": ["conflict"]}),
    ]
    samples = collect_samples(trajs, tasks)
    report = sampling_report(samples, resamples=500)
    assert report.n == 4 and report.ks == [1, 2, 3, 4]
    overall = report.overall.metrics
    assert overall["pass@1"].mean == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert overall["avg@3"].mean == pytest.approx(overall["pass@1"].mean)
    assert overall["pass@4"].mean == pytest.approx(2 / 3)
    assert overall["maj@4"].mean == pytest.approx((1 + 0 + 0) / 3)  # b: Lyon wins, c: Oslo wins
    for est in overall.values():
        assert est.lo <= est.mean <= est.hi and est.n == 3
    assert set(report.by_hops) == {"1", "2"} and report.by_hops["2"].tasks == 2
    assert {k: g.tasks for k, g in report.by_trap.items()} == {"alias": 1, "conflict": 2, "none": 1}
    assert report.by_trap["alias"].metrics["pass@4"].mean == 1.0
    assert list(report.by_source) == ["sandbox"]
    # per-task values feed the bootstrap / paired tests
    assert per_task(samples, "pass", 2).tolist() == pytest.approx(
        [pass_at_k(4, 2, 2), pass_at_k(4, 1, 2), 0.0]
    )
    with pytest.raises(ValueError):
        sampling_report(samples, ks=[5])


def test_sampling_report_without_task_meta_has_no_hop_or_trap_groups():
    report = sampling_report(collect_samples(samples_of("a", [("Paris", 1.0)])), resamples=100)
    assert report.by_hops == {} and report.by_trap == {}
    assert report.overall.metrics["maj@1"].mean == 1.0


def test_groups_follow_the_sandbox_world_task_meta(tmp_path):
    from searchprime.world import WorldConfig, build_world, load_world

    build_world(WorldConfig(seed=1, entities=60, tasks=40), tmp_path)
    tasks = [t for split in load_world(tmp_path).tasks.values() for t in split]
    # two samples per task; every other task right once, the last task never attempted
    trajs = [
        make_traj(t.id, attempt=a, answer=t.answers[0], em=float(i % 2 == 0 and a == 0))
        for i, t in enumerate(tasks[:-1])
        for a in range(2)
    ]
    report = sampling_report(collect_samples(trajs, tasks), resamples=200)
    hops = Counter(str(t.meta["hops"]) for t in tasks)
    traps = Counter(trap for t in tasks for trap in t.meta["traps"] or ["none"])
    assert {k: g.tasks for k, g in report.by_hops.items()} == dict(hops)
    assert {k: g.tasks for k, g in report.by_trap.items()} == dict(traps)
    assert report.overall.tasks == len(tasks)
    right = sum(1 for i in range(len(tasks) - 1) if i % 2 == 0)
    assert report.overall.metrics["pass@2"].mean == pytest.approx(right / len(tasks))
    assert report.overall.metrics["pass@1"].mean == pytest.approx(right / 2 / len(tasks))
