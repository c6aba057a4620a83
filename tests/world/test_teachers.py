"""Scripted teachers: protocol, format, determinism, knobs, ground truth."""

from __future__ import annotations

import asyncio
import re

import pytest

from searchprime.agent.actions import parse_action
from searchprime.agent.loop import AgentConfig, run_agent
from searchprime.errors import ConfigError
from searchprime.llm.base import LLM, SamplingParams
from searchprime.records import BEHAVIORS, Message
from searchprime.world import TEACHER_PRESETS, Teacher, TeacherConfig

_ONE_ACTION = re.compile(r"^<think>[^<>]+</think>\n<(search|answer)>[^<>]+</\1>$")


def test_teacher_implements_the_llm_protocol(world) -> None:
    teacher = Teacher(world, "all")
    assert isinstance(teacher, LLM)
    assert teacher.describe()["kind"] == "teacher"
    assert teacher.count_tokens([Message(role="user", content="x" * 400)]) > 50
    assert set(TEACHER_PRESETS) >= {"plain", "all", "verify", "authority", "adaptive", "recovery"}
    with pytest.raises(ConfigError, match="unknown teacher preset"):
        Teacher(world, "genius")


def test_every_turn_is_one_valid_action(mixed_trajectories) -> None:
    assert len(mixed_trajectories) == 360
    for traj in mixed_trajectories:
        assert traj.termination == "answer", traj.error
        for turn in traj.turns:
            assert _ONE_ACTION.match(turn.output), turn.output
            assert parse_action(turn.output, "explicit").kind in ("search", "answer")
            think = turn.action.think or ""
            assert len(think.split()) <= 60  # short thinking for a 135M policy
            # at most: a judgement, a fact, the progress count and the decision
            assert len(re.findall(r"[.!?](?:\s|$)", think)) <= 4, think
            assert set(turn.policy_meta["behaviors"]) <= set(BEHAVIORS)


def test_plain_never_shows_a_behavior_and_all_does(mixed_trajectories) -> None:
    by_preset: dict[str, list] = {}
    for traj in mixed_trajectories:
        by_preset.setdefault(traj.policy["name"], []).append(traj)
    for traj in by_preset["plain"]:
        assert not any(t.policy_meta["behaviors"] for t in traj.turns)
    shown = {b for traj in by_preset["all"] for t in traj.turns for b in t.policy_meta["behaviors"]}
    assert shown == set(BEHAVIORS)
    for preset in ("verify", "authority", "adaptive", "recovery"):
        seen = {b for tr in by_preset[preset] for t in tr.turns for b in t.policy_meta["behaviors"]}
        assert len(seen) == 1, (preset, seen)


def test_deterministic_given_task_and_seed(world, search) -> None:
    teacher = Teacher(world, "all")
    cfg = AgentConfig(max_turns=10)
    tasks = [t for t in world.split("dev") if len(t.meta["traps"]) >= 2][:15]

    async def run(seed: int):
        return await asyncio.gather(*(run_agent(t, teacher, search, cfg, seed=seed) for t in tasks))

    first, again, other = asyncio.run(run(5)), asyncio.run(run(5)), asyncio.run(run(6))
    outputs = [[t.output for t in tr.turns] for tr in first]
    assert outputs == [[t.output for t in tr.turns] for tr in again]
    assert outputs != [[t.output for t in tr.turns] for tr in other]  # paraphrases vary


def test_thinking_is_paraphrased(mixed_trajectories) -> None:
    firsts = {tr.turns[0].action.think.split(" ")[0] for tr in mixed_trajectories}
    assert len(firsts) >= 5
    texts = {t.action.think for tr in mixed_trajectories for t in tr.turns}
    assert len(texts) > len(mixed_trajectories)  # no fixed strings


def test_unknown_question_and_turn_limit(world, search) -> None:
    teacher = Teacher(world, "all")
    msgs = [Message(role="user", content="Question: What is the capital of France?\n")]
    out = asyncio.run(teacher.complete(msgs, SamplingParams(seed=1)))
    assert out.text.endswith("<answer>unknown</answer>")
    tight = Teacher(world, TeacherConfig(name="tight", adaptive=1.0, recovery=1.0, max_searches=1))
    task = next(t for t in world.split("dev") if "alias" in t.meta["traps"])
    traj = asyncio.run(run_agent(task, tight, search, AgentConfig(max_turns=10), seed=3))
    assert traj.n_searches == 1 and traj.termination == "answer"
    assert traj.turns[-1].policy_meta["move"] == "limit"


def test_teacher_answers_on_the_last_turn(world, search) -> None:
    """With a short turn limit the loop's reminder makes the teacher answer in time."""
    teacher = Teacher(world, "all")
    tasks = [t for t in world.split("dev") if len(t.meta["traps"]) >= 3][:10]
    cfg = AgentConfig(max_turns=3, turns_left_reminder=2)

    async def run():
        return await asyncio.gather(*(run_agent(t, teacher, search, cfg, seed=1) for t in tasks))

    for traj in asyncio.run(run()):
        assert traj.termination == "answer"
        assert len(traj.turns) <= 3


def test_first_thought_states_the_chain(world, mixed_trajectories) -> None:
    hops = {t.id: t.meta["hops"] for t in world.split("dev")}
    seen = set()
    for traj in mixed_trajectories:
        n = hops[traj.task_id]
        first = traj.turns[0].action.think or ""
        if n == 1:
            assert first.endswith("This takes 1 lookup."), first
        else:
            plan = re.search(r"This takes (\d) lookups: this one, then the (\w+)", first)
            assert plan and int(plan.group(1)) == n, first
        assert all("This takes" not in (t.action.think or "") for t in traj.turns[1:])
        seen.add(n)
    assert seen >= {1, 2, 3}


def test_each_hop_taken_is_counted_before_the_decision(world, mixed_trajectories) -> None:
    """'Lookup k of n done.' precedes 'answer' exactly when k == n; search on otherwise."""
    hops = {t.id: t.meta["hops"] for t in world.split("dev")}
    counted = {"answer": 0, "search": 0}
    for traj in mixed_trajectories:
        n = hops[traj.task_id]
        for turn in traj.turns:
            think = turn.action.think or ""
            found = re.findall(r"Lookup (\d) of (\d) done\. (.*)$", think)
            if not found:
                continue
            ((k, total, decision),) = found
            assert int(total) == n, think
            if turn.action.kind == "answer":
                assert int(k) == n, think
            else:
                assert int(k) < n and decision, think
            counted[turn.action.kind] += 1
    assert counted["answer"] > 100 and counted["search"] > 50, counted
