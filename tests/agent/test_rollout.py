"""Concurrent, resumable rollouts with a scripted policy and real BM25."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from searchprime.agent.loop import AgentConfig
from searchprime.agent.rollout import attempt_seed, finished_keys, rollout, run_rollout
from searchprime.errors import ConfigError, ResumeError
from searchprime.records import Trajectory, read_jsonl
from tests.agent.helpers import ScriptedLLM, make_tasks, searcher_policy


def keys(path: Path) -> list[tuple[str, int]]:
    return [t.key for t in read_jsonl(path, Trajectory, allow_partial_tail=False, latest=False)]


def test_rollout_attempts_concurrency_and_resume(bm25, tmp_path: Path) -> None:
    tasks = make_tasks(12)
    out = tmp_path / "traj.jsonl"
    llm = ScriptedLLM(searcher_policy, delay_s=0.01)
    done: list[Trajectory] = []
    summary = asyncio.run(
        rollout(
            tasks, llm, bm25, AgentConfig(), out, attempts=3, concurrency=5, on_done=done.append
        )
    )
    got = keys(out)
    assert len(got) == 36 == len(set(got)) == summary.written == len(done)
    assert set(got) == {(t.id, a) for t in tasks for a in range(3)}
    assert summary.by_termination == {"answer": 36} and summary.mean_turns == 2.0
    assert summary.requested == 36 and summary.skipped == 0 and not summary.interrupted
    assert 1 < llm.peak_in_flight <= 5
    trajs = list(read_jsonl(out, Trajectory))
    seeds = {t.key: t.meta["seed"] for t in trajs}
    assert len(set(seeds.values())) == 36  # distinct seeds per (task, attempt)
    assert all(seeds[k] == attempt_seed(*k) for k in seeds)
    assert "36 trajectories written to" in summary.line()
    # a rerun does nothing
    again = asyncio.run(rollout(tasks, llm, bm25, AgentConfig(), out, attempts=3, concurrency=5))
    assert again.written == 0 and again.skipped == 36 and len(keys(out)) == 36
    # more attempts: only the new ones run
    more = asyncio.run(rollout(tasks, llm, bm25, AgentConfig(), out, attempts=4, concurrency=5))
    assert more.written == 12 and sorted(keys(out)) == sorted(
        (t.id, a) for t in tasks for a in range(4)
    )


def test_resume_after_partial_tail(bm25, tmp_path: Path) -> None:
    tasks = make_tasks(6)
    out = tmp_path / "traj.jsonl"
    asyncio.run(rollout(tasks[:4], ScriptedLLM(searcher_policy), bm25, None, out))
    lines = out.read_text().splitlines(keepends=True)
    # a killed writer left the 4th record half-written
    out.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    assert len(finished_keys(out)) == 3
    summary = asyncio.run(rollout(tasks, ScriptedLLM(searcher_policy), bm25, None, out))
    assert summary.skipped == 3 and summary.written == 3
    assert sorted(keys(out)) == sorted((t.id, 0) for t in tasks)


def test_cancel_leaves_valid_file_and_resumes(bm25, tmp_path: Path) -> None:
    tasks = make_tasks(20)
    out = tmp_path / "traj.jsonl"

    async def interrupted() -> None:
        job = asyncio.create_task(
            rollout(
                tasks, ScriptedLLM(searcher_policy, delay_s=0.02), bm25, None, out, concurrency=4
            )
        )
        while not out.exists() or len(out.read_text().splitlines()) < 5:
            await asyncio.sleep(0.01)
        job.cancel()  # what Ctrl-C does to asyncio.run's main task
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(interrupted())
    first = keys(out)
    assert 5 <= len(first) < 20 and len(set(first)) == len(first)
    summary = run_rollout(tasks, ScriptedLLM(searcher_policy), bm25, None, out, concurrency=4)
    assert summary.written == 20 - len(first)
    assert sorted(keys(out)) == sorted((t.id, 0) for t in tasks)


def test_resume_refuses_other_agent_settings(bm25, tmp_path: Path) -> None:
    out = tmp_path / "traj.jsonl"
    tasks = make_tasks(2)
    asyncio.run(rollout(tasks, ScriptedLLM(searcher_policy), bm25, AgentConfig(), out))
    with pytest.raises(ResumeError, match="max_turns"):
        asyncio.run(
            rollout(tasks, ScriptedLLM(searcher_policy), bm25, AgentConfig(max_turns=3), out)
        )


def test_errors_are_records_and_argument_checks(bm25, tmp_path: Path) -> None:
    def flaky(messages, i):
        if "variant 1)" in messages[1].content:
            raise RuntimeError("boom")
        return searcher_policy(messages, i)

    out = tmp_path / "traj.jsonl"
    llm = ScriptedLLM(flaky)
    summary = run_rollout(make_tasks(3), llm, bm25, None, out, close=True)
    assert summary.by_termination == {"answer": 2, "error": 1}
    assert llm.closed
    errors = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(e["termination"] for e in errors) == {"answer": 2, "error": 1}
    with pytest.raises(ConfigError, match="more than once"):
        asyncio.run(rollout(make_tasks(2) * 2, llm, bm25, None, tmp_path / "x.jsonl"))
    with pytest.raises(ConfigError, match="attempts"):
        asyncio.run(rollout(make_tasks(2), llm, bm25, None, tmp_path / "x.jsonl", attempts=0))
