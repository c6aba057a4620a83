"""report.json numbers in the shapes the eval modules produce are read into the model."""

from __future__ import annotations

import json
import random

import pytest

from searchprime.eval.passk import collect_samples, sampling_report
from searchprime.eval.scaling import turn_scaling
from searchprime.eval.uncertainty import mean_ci, mean_sd, paired
from searchprime.report.parse import parse_arm, parse_comparisons, parse_value
from tests.report.synth import make_tasks, make_trajectory


def _dump(model) -> dict:
    return json.loads(model.model_dump_json())


def test_values_in_every_shape() -> None:
    assert parse_value(0.5).mean == 0.5 and not parse_value(0.5).has_ci
    v = parse_value(0.5, [0.25, 0.75])
    assert (v.mean, v.lo, v.hi) == (0.5, 0.25, 0.75)
    est = _dump(mean_ci([1, 0, 1, 1], resamples=200))
    v = parse_value(est)
    assert (v.mean, v.lo, v.hi, v.n) == (0.75, est["lo"], est["hi"], 4)
    v = parse_value(0.4, seeds=_dump(mean_sd([0.3, 0.5])))
    assert v.sd == pytest.approx(0.1414, abs=1e-4)
    entropy_report = {"overall": {"mean": 0.61, "tokens": 100}, "by_turn": {"1": {"mean": 0.7}}}
    assert parse_value(entropy_report).mean == 0.61
    for absent in (None, "x", float("nan"), {"tokens": 3}, True):
        assert parse_value(absent) is None


def test_arm_with_sampling_scaling_entropy_and_seeds() -> None:
    rng = random.Random(0)
    tasks = make_tasks(8)
    trajs = []
    for t in tasks:
        for a in range(4):
            traj = make_trajectory(t, "m", rng, 0.5, 0.5)
            traj.attempt = a
            trajs.append(traj)
    sampling = sampling_report(collect_samples(trajs, tasks), [1, 2, 4], resamples=200)
    scaling = turn_scaling(trajs, (2, 4, 6), tasks=tasks, ks=[1, 4], resamples=200)
    raw = {
        "n": 32,
        "em": 0.5,
        "f1": 0.55,
        "ci95": {"em": [0.3, 0.7], "entropy": [0.5, 0.7]},
        "seeds": {"em": {"mean": 0.5, "sd": 0.05, "n": 3}},
        "sampling": _dump(sampling),
        "scaling": [_dump(p) for p in scaling],
        "entropy": {
            "overall": {"mean": 0.6, "tokens": 10},
            "by_turn": {"2": {"mean": 0.5, "tokens": 4}, "1": {"mean": 0.7, "tokens": 6}},
        },
        "behavior": {"error_recovery": 0.25},
        "behavior_offered": {"error_recovery": None},
        "offered_n": {"error_recovery": 0},
        "degenerate": "loops",
        "unknown_future_key": {"x": 1},
    }
    arm = parse_arm("m", raw)
    assert (arm.em.lo, arm.em.hi, arm.em.sd) == (0.3, 0.7, 0.05)
    assert arm.f1.mean == 0.55 and not arm.f1.has_ci
    overall = sampling.overall.metrics
    assert sorted(arm.pass_at_k) == [1, 2, 4]
    assert arm.pass_at_k[4].mean == overall["pass@4"].mean
    assert arm.pass_at_k[4].lo == overall["pass@4"].lo
    assert arm.maj_at_k[2].mean == overall["maj@2"].mean
    assert [p.turns for p in arm.scaling] == [2, 4, 6]
    assert arm.scaling[1].em.mean == scaling[1].accuracy.mean
    assert arm.scaling[2].pass_at_k[4].mean == scaling[2].pass_at[4].mean
    assert (arm.entropy.mean, arm.entropy.lo) == (0.6, 0.5)
    assert arm.entropy_by_turn == [0.7, 0.5]
    assert arm.behavior_offered == {"error_recovery": None} and arm.degenerate == "loops"


def test_plain_pass_at_k_mapping() -> None:
    arm = parse_arm(
        "m", {"n": 5, "pass_at_k": {"8": 0.9, "1": {"mean": 0.4, "lo": 0.2, "hi": 0.6}, "x": 1}}
    )
    assert list(arm.pass_at_k) == [1, 8]
    assert arm.pass_at_k[1].has_ci and arm.pass_at_k[8].mean == 0.9


def test_comparisons_from_paired() -> None:
    res = paired([0, 1, 0, 1, 1], [1, 1, 1, 1, 0], resamples=200)
    (c,) = parse_comparisons([{"a": "base", "b": "primed", "metric": "em", **res}, {"x": 1}])
    assert (c.a, c.b, c.delta, c.gained, c.lost, c.n) == ("base", "primed", 0.2, 2, 1, 5)
    assert (c.lo, c.hi) == tuple(res["ci95"]) and c.p_value == res["mcnemar_p"]
    assert parse_comparisons({"base vs primed": {"a": "base", "b": "p", "delta": 0.1}})[0].b == "p"
    # as the experiment runner writes them
    (c,) = parse_comparisons([{"model": "primed", "against": "base", "metric": "em", **res}])
    assert (c.a, c.b, c.delta) == ("base", "primed", 0.2)


def test_entropy_as_the_experiment_writes_it() -> None:
    raw = {
        "n": 2,
        "entropy": {"mean": 0.42, "tokens": 900, "by_turn": {"2": 0.3, "1": 0.5, "3": None}},
    }
    arm = parse_arm("m", raw)
    assert arm.entropy.mean == 0.42 and arm.entropy_by_turn[:2] == [0.5, 0.3]
    assert arm.entropy_by_turn[2] != arm.entropy_by_turn[2]  # NaN: no tokens at turn 3
