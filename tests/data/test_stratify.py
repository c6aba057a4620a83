"""Stratified draws: an arm keeps the pool's mix of a task field, not the strategy's."""

from __future__ import annotations

import json

import pytest
from sp_trajs import make_traj
from typer.testing import CliRunner

from searchprime.data.prime import prime
from searchprime.data.select import (
    SelectionConfig,
    SelectionError,
    allocate,
    select_trajectories,
)
from searchprime.errors import ConfigError
from searchprime.records import Task, write_jsonl


def _pool() -> tuple[list, dict[str, Task]]:
    """60 one-hop tasks (50 solved) and 40 two-hop tasks (10 solved): 'correct' favours 1-hop."""
    trajs, tasks = [], {}
    for i in range(100):
        hops = 1 if i < 60 else 2
        solved = i < 50 if hops == 1 else i < 70
        tid = f"t{i:03d}"
        tasks[tid] = Task(id=tid, question=f"q{i}?", answers=["Paris"], meta={"hops": hops})
        trajs.append(make_traj(tid, em=1.0 if solved else 0.0))
    return trajs, tasks


def test_allocate_is_proportional_and_exact() -> None:
    assert allocate(10, {"1": 60, "2": 40}, {"1": 50, "2": 10}) == {"1": 6, "2": 4}
    got = allocate(7, {"a": 1, "b": 1, "c": 1}, {"a": 9, "b": 9, "c": 9})
    assert sum(got.values()) == 7 and max(got.values()) - min(got.values()) <= 1


def test_allocate_moves_a_short_stratum_to_the_others() -> None:
    got = allocate(20, {"1": 37, "2": 43, "3": 20}, {"1": 50, "2": 30, "3": 1})
    assert got["3"] == 1 and sum(got.values()) == 20
    assert got == {"1": 9, "2": 10, "3": 1}
    # not enough in all: everything available, no endless loop
    assert allocate(10, {"1": 1, "2": 1}, {"1": 2, "2": 3}) == {"1": 2, "2": 3}
    # a stratum with no share in the pool still fills a gap when nothing else can
    assert allocate(3, {"1": 5}, {"1": 1, "2": 4}) == {"1": 1, "2": 2}


def test_stratified_selection_keeps_the_pool_mix() -> None:
    trajs, tasks = _pool()
    plain = select_trajectories(trajs, SelectionConfig(strategy="correct", n=20, seed=3))
    hops_plain = [tasks[t.task_id].meta["hops"] for t in plain.trajectories]
    assert hops_plain.count(2) < 8  # the solved ones are 5:1 one-hop
    cfg = SelectionConfig(strategy="correct", n=20, seed=3, stratify="hops")
    got = select_trajectories(trajs, cfg, tasks)
    hops = [tasks[t.task_id].meta["hops"] for t in got.trajectories]
    assert len(hops) == 20 and hops.count(1) == 12 and hops.count(2) == 8  # the pool's 60:40
    assert all(t.scores.em == 1.0 for t in got.trajectories)
    assert got.card.strata == {
        "1": {"pool": 60, "selected": 12},
        "2": {"pool": 40, "selected": 8},
    }
    assert "stratified by hops (selected/pool): 1: 12/60, 2: 8/40" in got.card.summary_lines()
    again = select_trajectories(trajs, cfg, tasks)
    assert [t.key for t in again.trajectories] == [t.key for t in got.trajectories]
    order = [t.key for t in trajs]
    keys = [t.key for t in got.trajectories]
    assert keys == sorted(keys, key=order.index)  # input order, like unstratified draws


def test_stratified_selection_fills_from_other_strata_when_one_runs_short() -> None:
    trajs, tasks = _pool()
    cfg = SelectionConfig(strategy="correct", n=40, seed=0, stratify="hops")
    hops = [
        tasks[t.task_id].meta["hops"] for t in select_trajectories(trajs, cfg, tasks).trajectories
    ]
    assert hops.count(2) == 10 and hops.count(1) == 30  # all 10 solved 2-hop runs, rest 1-hop


def test_stratify_errors_name_the_task_and_field() -> None:
    trajs, tasks = _pool()
    cfg = SelectionConfig(strategy="correct", n=5, stratify="hops")
    with pytest.raises(SelectionError, match="task 't000' is not among the tasks given"):
        select_trajectories(trajs, cfg, {})
    tasks["t003"] = Task(id="t003", question="q?", answers=["x"], meta={})
    with pytest.raises(SelectionError, match="task 't003' has no meta field 'hops'"):
        select_trajectories(trajs, cfg, tasks)


def test_prime_and_cli_read_the_task_files(tmp_path) -> None:
    from searchprime.cli.main import app

    trajs, tasks = _pool()
    traj_file, task_file = tmp_path / "trajs.jsonl", tmp_path / "tasks.jsonl"
    write_jsonl(traj_file, trajs)
    write_jsonl(task_file, list(tasks.values()))
    cfg = SelectionConfig(strategy="correct", n=10, stratify="hops")
    with pytest.raises(ConfigError, match="needs the tasks"):
        prime([traj_file], cfg, tmp_path / "x")
    card = prime([traj_file], cfg, tmp_path / "a", tasks=[task_file])
    assert card.strata == {"1": {"pool": 60, "selected": 6}, "2": {"pool": 40, "selected": 4}}

    args = ["prime", str(traj_file), "--strategy", "correct", "--n", "10", "--stratify", "hops"]
    args += ["--tasks", str(task_file), "--out", str(tmp_path / "b")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "stratified by hops (selected/pool): 1: 6/60, 2: 4/40" in res.output
    saved = json.loads((tmp_path / "b" / "selection.json").read_text())
    assert saved["config"]["stratify"] == "hops" and saved["strata"]["2"]["selected"] == 4
