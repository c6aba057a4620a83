"""Failure modes: each mode from a crafted trajectory over a real sandbox world, then runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.behaviors.crafted import (
    _conflict_task,
    _distractor_task,
    _enc,
    _page,
    _q,
    _q2,
    _traj,
    _turn,
)
from typer.testing import CliRunner

from searchprime.behaviors.failures import FAILURES, classify, failure_run, transitions
from searchprime.cli.main import app
from searchprime.errors import RecordError
from searchprime.records import Task, Trajectory, Turn, write_jsonl
from searchprime.world import WorldConfig, build_world, load_world
from searchprime.world.load import World


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    build_world(WorldConfig(seed=7, entities=1500, tasks=1200), out)
    return out


@pytest.fixture(scope="module")
def world(world_dir: Path) -> World:
    return load_world(world_dir)


def _two_hop(world: World) -> Task:
    return next(
        t
        for split in world.tasks.values()
        for t in split
        if t.meta["hops"] == 2 and not t.meta["traps"] and t.meta["named_as"] == "name"
    )


def _hop(world: World, i: int, fact) -> Turn:
    """Turn ``i``: the textbook query for ``fact`` and its encyclopedia page."""
    return _turn(
        i,
        "search",
        _q(world, fact.relation, fact.subject),
        [_enc(world, fact.relation, fact.subject)],
    )


def _walk(world: World, task: Task) -> tuple[Turn, Trajectory]:
    """The first hop's turn, and the straight right path down a two-hop chain."""
    f0, f1 = world.chain(task)
    first = _hop(world, 0, f0)
    return first, _traj(
        task, [first, _hop(world, 1, f1), _turn(2, "answer", world.name(f1.object))]
    )


def _mode(traj: Trajectory, world: World | None) -> str:
    return classify(traj, world).mode


def test_right_answer_is_correct_and_no_answer_splits_loops(world) -> None:
    task = _two_hop(world)
    f0, f1 = world.chain(task)
    first, right = _walk(world, task)
    assert _mode(right, world) == "correct"
    q = _q(world, f0.relation, f0.subject)
    loop = [
        _turn(i, "search", q if i % 2 else q.upper() + "?", [_enc(world, f0.relation, f0.subject)])
        for i in range(3)
    ]
    looped = classify(_traj(task, loop), world)
    assert looped.mode == "looped" and "3 times" in looped.why and not looped.answered
    varied = [first, right.turns[1], _turn(2, "search", _q2(world, f0.relation, f0.subject))]
    assert _mode(_traj(task, varied), world) == "out_of_turns"
    failed = _traj(task, [first])
    failed.termination, failed.error = "error", "policy: HTTP 500 after 5 retries"
    assert classify(failed, world).why.startswith("policy: HTTP 500")
    assert _mode(failed, world) == "backend_error"


def test_world_modes_of_wrong_answers(world) -> None:
    task = _two_hop(world)
    f0, f1 = world.chain(task)
    first = _hop(world, 0, f0)
    # stopped after the first hop: answered the bridge entity
    plan = classify(_traj(task, [first, _turn(1, "answer", world.name(f0.object))]), world)
    assert plan.mode == "plan_error" and "hop 1 of 2" in plan.why
    # searched the answer itself, then answered a fact about it (one hop too many)
    one = next(
        t
        for split in world.tasks.values()
        for t in split
        if t.meta["hops"] == 1
        and not t.meta["traps"]
        and any(f.subject == t.meta["gold_entities"][-1] for f in world.facts.values())
    )
    (g,) = world.chain(one)
    past = next(f for f in world.facts.values() if f.subject == g.object)
    hops = [
        _turn(0, "search", _q(world, g.relation, g.subject), [_enc(world, g.relation, g.subject)]),
        _turn(
            1, "search", _q(world, past.relation, g.object), [_enc(world, past.relation, g.object)]
        ),
        _turn(2, "answer", world.name(past.object)),
    ]
    over = classify(_traj(one, hops), world)
    assert over.mode == "overshot" and "at turn 1" in over.why


def test_low_authority_and_near_duplicate(world) -> None:
    task, low, high = _conflict_task(world)
    f = world.chain(task)[0]
    q = _q(world, f.relation, f.subject)
    copied = _traj(
        task, [_turn(0, "search", q, [low, high]), _turn(1, "answer", world.name(f.wrong))]
    )
    got = classify(copied, world)
    assert got.mode == "low_authority" and f"authority {low.authority}" in got.why
    # without the world the same answer is only "read off the results"
    assert _mode(copied, None) == "wrong_value"

    task, base, twin, wrong = _distractor_task(world)
    f0 = world.chain(task)[0]
    twin_page = _page(world, "twin", (f0.relation, twin, wrong))
    follow = _traj(
        task,
        [
            _turn(0, "search", _q(world, f0.relation, base), [twin_page]),
            _turn(1, "answer", world.name(wrong)),
        ],
    )
    dup = classify(follow, world)
    assert dup.mode == "near_duplicate" and world.name(twin) in dup.why


def test_value_of_another_entity_is_wrong_subject(world) -> None:
    task = _two_hop(world)
    f0 = world.chain(task)[0]
    chain = set(task.meta["gold_entities"])
    # a page stating a fact of an entity off the chain (and not a near-duplicate of one)
    page, (rel, subj, value) = next(
        (p, c)
        for p in world.pages.values()
        for c in p.claims
        if c[1] not in chain and c[2] not in chain and world.entities[c[1]].twin_of is None
    )
    read = _traj(
        task,
        [
            _turn(0, "search", _q(world, f0.relation, f0.subject), [page]),
            _turn(1, "answer", world.name(value)),
        ],
    )
    got = classify(read, world)
    assert got.mode == "wrong_subject", got
    assert world.name(subj) in got.why and rel in got.why
    # without the world it is only a value read off the results
    assert _mode(read, None) == "wrong_value"


def test_guess_is_unsupported(world) -> None:
    task = _two_hop(world)
    f0 = world.chain(task)[0]
    first = _hop(world, 0, f0)
    guess = _traj(task, [first, _turn(1, "answer", "Atlantis Prime")])
    assert _mode(guess, world) == "unsupported" and _mode(guess, None) == "unsupported"


def test_runs_and_transitions(world) -> None:
    task = _two_hop(world)
    f0, f1 = world.chain(task)
    first, right = _walk(world, task)
    q = _q(world, f0.relation, f0.subject)
    looped = _traj(
        task, [_turn(i, "search", q, [_enc(world, f0.relation, f0.subject)]) for i in range(4)]
    )
    a = [classify(right, world)]
    b = [classify(looped, world)]
    run = failure_run("b", b)
    assert run.n == 1 and run.modes["looped"] == 1 and set(run.modes) == set(FAILURES)
    assert run.repeat_rate == pytest.approx(3 / 4) and run.answered == 0.0
    assert run.mean_searches == 4 and run.examples["looped"][0].startswith(task.id)
    t = transitions("a", a, "b", b)
    assert t.n == 1 and t.lost == {"looped": 1} and t.gained == {}
    assert t.counts == {"correct": {"looped": 1}}


def test_cli_prints_modes_and_what_b_lost(world, world_dir, tmp_path) -> None:
    task = _two_hop(world)
    f0, f1 = world.chain(task)
    first, right = _walk(world, task)
    plan = _traj(task, [first, _turn(1, "answer", world.name(f0.object))])
    write_jsonl(tmp_path / "base.jsonl", [right])
    write_jsonl(tmp_path / "primed.jsonl", [plan])
    out = tmp_path / "failures.json"
    res = CliRunner().invoke(
        app,
        [
            "behaviors",
            "failures",
            str(tmp_path / "base.jsonl"),
            str(tmp_path / "primed.jsonl"),
            "--world",
            str(world_dir),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (
        "plan_error" in res.output and "primed lost 1 of the 1 tasks base got right" in res.output
    )
    saved = json.loads(out.read_text())
    assert [r["run"] for r in saved["runs"]] == ["base", "primed"]
    assert saved["transitions"][0]["lost"] == {"plan_error": 1}
    # a bad file names file and line
    (tmp_path / "bad.jsonl").write_text('{"task_id": 1}\n')
    bad = CliRunner().invoke(app, ["behaviors", "failures", str(tmp_path / "bad.jsonl")])
    assert isinstance(bad.exception, RecordError)
    assert str(bad.exception).startswith(f"{tmp_path / 'bad.jsonl'}:1: task_id")
