"""Statistics on synthetic labelled trajectories with known rates; plots are written."""

from __future__ import annotations

import json

import pytest

from searchprime.behaviors.stats import compute_stats, pearson
from searchprime.records import BEHAVIORS, write_jsonl
from searchprime.report.plots import plot_behavior_stats

IV, AE, AS, ER = BEHAVIORS


def _run(traj_factory, prefix: str) -> list:
    """100 trajectories: 60 correct. IV: 45 of correct, 15 of incorrect. AE: everyone.
    AS: 30 correct + 30 incorrect (no link). ER: unknown for 10 incorrect, else absent.
    All four: 0 (ER never present). 5 unlabelled trajectories on top."""
    trajs = []
    for i in range(100):
        correct = i < 60
        shown = {AE}
        if (correct and i < 45) or (not correct and i < 75):
            shown.add(IV)
        if (correct and i < 30) or (not correct and i < 90):
            shown.add(AS)
        unknown = {ER} if (not correct and i >= 90) else set()
        trajs.append(traj_factory(f"{prefix}{i}", correct=correct, shown=shown, unknown=unknown))
    trajs += [traj_factory(f"{prefix}u{i}", labelled=False) for i in range(5)]
    return trajs


def test_rates_denominators_and_correlations(tmp_path, traj_factory) -> None:
    path = tmp_path / "run_a.jsonl"
    write_jsonl(path, _run(traj_factory, "a"))
    report = compute_stats([path])
    (run,) = report.runs
    assert (run.run, run.n, run.n_correct, run.n_incorrect, run.unlabelled) == (
        "run_a",
        100,
        60,
        40,
        5,
    )
    assert run.accuracy == pytest.approx(0.6)
    iv = run.behaviors[IV]
    assert (iv.present, iv.present_correct, iv.present_incorrect) == (60, 45, 15)
    assert iv.rate == pytest.approx(0.6)
    assert iv.rate_correct == pytest.approx(0.75)
    assert iv.rate_incorrect == pytest.approx(15 / 40)
    assert iv.acc_with == pytest.approx(45 / 60)
    assert iv.acc_without == pytest.approx(15 / 40)
    # phi = (ad - bc) / sqrt((a+b)(c+d)(a+c)(b+d)) with a=45, b=15, c=15, d=25
    assert iv.phi == pytest.approx((45 * 25 - 15 * 15) / (60 * 40 * 60 * 40) ** 0.5)
    assert iv.phi == pytest.approx(0.375)
    assert iv.r_f1 == pytest.approx(0.375)  # F1 is 0/1 here too
    ae = run.behaviors[AE]
    assert ae.rate == 1.0 and ae.phi is None  # constant: no correlation defined
    as_ = run.behaviors[AS]
    assert as_.rate_correct == pytest.approx(0.5) and as_.rate_incorrect == pytest.approx(0.75)
    assert as_.phi < 0
    er = run.behaviors[ER]
    assert (er.present, er.unknown, er.rate) == (0, 10, 0.0)  # unknown counts as not shown
    assert run.all_present == 0 and run.all_rate == 0.0
    for b in run.behaviors.values():  # consistent denominators
        assert b.present == b.present_correct + b.present_incorrect


def test_all_four_and_comparison_across_runs(tmp_path, traj_factory) -> None:
    rich = [traj_factory(f"r{i}", correct=i < 8, shown=set(BEHAVIORS)) for i in range(10)]
    poor = [traj_factory(f"p{i}", correct=i < 2, shown={IV} if i < 5 else set()) for i in range(10)]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, rich)
    write_jsonl(b, poor)
    report = compute_stats([a, b], names=["primed", "base"])
    primed, base = report.runs
    assert primed.run == "primed" and primed.all_rate == 1.0 and primed.all_present_correct == 8
    assert primed.all_rate_correct == 1.0 and primed.all_rate_incorrect == 1.0
    assert base.all_rate == 0.0 and base.behaviors[IV].rate == pytest.approx(0.5)
    assert base.accuracy == pytest.approx(0.2)
    paths = plot_behavior_stats(report, tmp_path / "plots")
    assert [p.name for p in paths] == ["rates_by_run.png", "behavior_vs_accuracy.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    json.loads(report.model_dump_json())


def test_correctness_uses_judge_when_recorded(tmp_path, traj_factory) -> None:
    from searchprime.records import Scores

    t = traj_factory("j", correct=False, shown={IV})
    t.scores = Scores(em=0.0, cover_em=0.0, f1=0.0, judge=True)
    path = tmp_path / "j.jsonl"
    write_jsonl(path, [t])
    assert compute_stats([path]).runs[0].n_correct == 1
    assert compute_stats([path], correctness="em").runs[0].n_correct == 0


def test_pearson_reference() -> None:
    assert pearson([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert pearson([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert pearson([1], [1]) is None


def test_group_by_field(tmp_path, traj_factory) -> None:
    trajs = []
    for i in range(6):
        t = traj_factory(f"g{i}", correct=i % 2 == 0, shown={IV} if i < 3 else set())
        t.policy = {"name": "teacher:all" if i < 3 else "teacher:none"}
        trajs.append(t)
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, trajs)
    report = compute_stats([path], group_by="policy.name")
    assert [r.run for r in report.runs] == ["teacher:all", "teacher:none"]
    assert [r.behaviors[IV].rate for r in report.runs] == [1.0, 0.0]
    assert [r.n for r in report.runs] == [3, 3]
    assert compute_stats([path], group_by="meta.nothing").runs[0].run == "-"
