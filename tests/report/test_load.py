"""Loading a run folder or explicit files into the report model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchprime.errors import ConfigError, RecordError
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl, write_jsonl
from searchprime.report import load_files, load_report, load_run
from searchprime.report.stats import per_task
from tests.report.synth import LONE, make_tasks, make_trajectory


def test_run_folder_numbers_equal_report_json(run_dir: Path) -> None:
    data = json.loads((run_dir / "report.json").read_text())
    rep = load_run(run_dir)
    assert list(rep.arms) == ["base", "primed", "primed+rl"]
    for name, raw in data["arms"].items():
        arm = rep.arms[name]
        assert arm.n == raw["n"] == 30
        for key in ("em", "f1", "valid_turns", "answered", "turns", "searches"):
            assert getattr(arm, key).mean == raw[key], (name, key)
        for b in BEHAVIORS:
            assert arm.behavior[b].mean == raw["behavior"][b]
            off = raw["behavior_offered"][b]
            assert (arm.behavior_offered[b] and arm.behavior_offered[b].mean) == off
        assert arm.has_trajectories
    assert rep.arms["primed+rl"].rl == {"steps": 5, "reward_first": 0.1, "reward_last": 0.3}
    assert rep.seconds == {"total": 12.5}


def test_trajectories_get_task_meta_and_labels(run_dir: Path) -> None:
    rep = load_run(run_dir)
    assert len(rep.trajectories) == 90
    tasks = {t["id"]: t for t in map(json.loads, (run_dir / "world/tasks/dev.jsonl").open())}
    trajs = {
        (t.task_id, "primed"): t
        for t in read_jsonl(run_dir / "eval/primed.labelled.jsonl", Trajectory)
    }
    for view in rep.trajectories:
        meta = tasks[view.task_id]["meta"]
        assert (view.hops, view.traps) == (meta["hops"], meta["traps"])
        if view.model == "primed":
            src = trajs[(view.task_id, "primed")]
            assert view.correct == (src.scores.em == 1.0)
            assert len(view.turns) == len(src.turns)
            for b in BEHAVIORS:
                assert view.labels[b].turns == src.labels.behaviors[b].turns
    # the line written by a foreign tool keeps its lone surrogate until the HTML is written
    assert any(LONE == (v.turns[0].think or "") for v in rep.trajectories)


def test_rl_steps_named_after_the_rl_model(run_dir: Path) -> None:
    rep = load_run(run_dir)
    assert list(rep.rl_steps) == ["primed+rl"]
    assert [r["step"] for r in rep.rl_steps["primed+rl"]] == [1, 2, 3, 4, 5]


def test_cis_and_paired_comparisons_computed_when_missing(run_dir: Path) -> None:
    rep = load_run(run_dir)
    for arm in rep.arms.values():
        assert arm.em.has_ci and arm.em.lo <= arm.em.mean <= arm.em.hi and arm.em.n == 30
    assert any("bootstrap" in n for n in rep.notes)
    pairs = {(c.a, c.b): c for c in rep.comparisons}
    assert set(pairs) == {("primed", "primed+rl"), ("base", "primed")}
    c = pairs[("base", "primed")]
    a = per_task(list(read_jsonl(run_dir / "eval/base.labelled.jsonl", Trajectory)), "em")
    b = per_task(list(read_jsonl(run_dir / "eval/primed.labelled.jsonl", Trajectory)), "em")
    assert c.gained == sum(a[k] == 0 and b[k] == 1 for k in a)
    assert c.lost == sum(a[k] == 1 and b[k] == 0 for k in a)
    assert c.delta == pytest.approx(sum(b.values()) / 30 - sum(a.values()) / 30)
    assert c.lo <= c.delta <= c.hi and 0 < c.p_value <= 1


def test_recorded_uncertainty_is_kept(run_dir: Path) -> None:
    data = json.loads((run_dir / "report.json").read_text())
    data["arms"]["base"]["ci95"] = {"em": [0.01, 0.99]}
    data["comparisons"] = [
        {
            "a": "base",
            "b": "primed",
            "metric": "em",
            "delta": 0.5,
            "ci95": [0.1, 0.9],
            "gained": 3,
            "lost": 1,
            "mcnemar_p": 0.625,
            "n": 30,
        }
    ]
    (run_dir / "report.json").write_text(json.dumps(data))
    rep = load_run(run_dir)
    assert (rep.arms["base"].em.lo, rep.arms["base"].em.hi) == (0.01, 0.99)
    assert len(rep.comparisons) == 1 and rep.comparisons[0].source == "report.json"
    assert rep.comparisons[0].p_value == 0.625


def test_no_ci_when_trajectories_do_not_reproduce_the_mean(run_dir: Path) -> None:
    data = json.loads((run_dir / "report.json").read_text())
    data["arms"]["base"]["em"] += 0.1
    (run_dir / "report.json").write_text(json.dumps(data))
    rep = load_run(run_dir)
    assert not rep.arms["base"].em.has_ci
    assert any("No CI for base em" in n for n in rep.notes)


def test_sampled_attempts_give_pass_at_k(tmp_path: Path) -> None:
    import random

    from searchprime.eval.passk import pass_at_k

    rng = random.Random(1)
    tasks = make_tasks(6)
    trajs = []
    for t in tasks:
        for attempt in range(4):
            traj = make_trajectory(t, "m", rng, 0.4, 0.5)
            traj.attempt = attempt
            trajs.append(traj)
    write_jsonl(tmp_path / "m.jsonl", trajs[1:])  # one task has 3 of 4: the 4th counts wrong
    rep = load_files([tmp_path / "m.jsonl"])
    arm = rep.arms["m"]
    assert sorted(arm.pass_at_k) == [1, 2, 4]
    by_task: dict[str, list[bool]] = {}
    for t in trajs[1:]:
        by_task.setdefault(t.task_id, []).append(t.scores.em == 1.0)
    want = sum(pass_at_k(4, sum(v), 2) for v in by_task.values()) / len(by_task)
    assert arm.pass_at_k[2].mean == pytest.approx(want)
    assert arm.pass_at_k[1].mean <= arm.pass_at_k[2].mean <= arm.pass_at_k[4].mean
    assert arm.maj_at_k and arm.avg_at_k[1].mean == pytest.approx(arm.pass_at_k[1].mean)


def test_explicit_files(run_dir: Path, tmp_path: Path) -> None:
    files = [
        run_dir / "eval/base.labelled.jsonl",
        run_dir / "eval/primed.labelled.jsonl",
        run_dir / "rl/primed/steps.jsonl",
    ]
    rep = load_report(files, tasks=run_dir / "world/tasks/dev.jsonl")
    assert list(rep.arms) == ["base", "primed"]
    data = json.loads((run_dir / "report.json").read_text())
    for name in ("base", "primed"):
        for key in ("em", "f1", "turns", "searches", "valid_turns", "answered"):
            assert getattr(rep.arms[name], key).mean == pytest.approx(data["arms"][name][key])
        for b in BEHAVIORS:  # unknown counts as not shown, as in summarize
            assert rep.arms[name].behavior[b].mean == pytest.approx(
                data["arms"][name]["behavior"][b]
            )
    assert list(rep.rl_steps) == ["primed"]
    assert {v.hops for v in rep.trajectories} == {1, 2, 3}
    # without --tasks, hops and traps are unknown
    assert {v.hops for v in load_files(files[:1]).trajectories} == {None}


def test_errors_name_the_problem(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no report.json"):
        load_run(tmp_path)
    (run_dir / "report.json").write_text('{"arms": ')
    with pytest.raises(RecordError, match=r"report.json:1: <json>"):
        load_run(run_dir)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"}\n')
    with pytest.raises(RecordError, match=r"bad.jsonl:1: question"):
        load_files([bad])
    with pytest.raises(ConfigError, match="one run folder"):
        load_report([run_dir, bad])


def test_a_model_evaluated_by_two_trainings_gets_a_note(run_dir: Path) -> None:
    data = json.loads((run_dir / "report.json").read_text())
    data["arms"]["base"]["weights"] = {"rollouts": "aaaa", "entropy": "aaaa", "samples": "bbbb"}
    data["arms"]["primed"]["weights"] = {"rollouts": "cccc", "samples": "cccc"}
    data["arms"]["primed+rl"]["weights"] = ["not", "a", "mapping"]
    (run_dir / "report.json").write_text(json.dumps(data))
    rep = load_run(run_dir)
    assert rep.arms["base"].weights["samples"] == "bbbb"
    assert rep.arms["primed+rl"].weights == {}
    notes = [n for n in rep.notes if "another training" in n]
    assert len(notes) == 1 and notes[0].startswith(
        "base: its samples came from another training of its recipe than its rollouts"
    )
    assert "samples bbbb" in notes[0]
