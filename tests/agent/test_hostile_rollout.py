"""Rollouts that meet hostile text and failing backends: every record is written, errors are
retried on rerun, a failing backend stops the run early, and the CLI says so in its exit code."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from searchprime.agent.rollout import finished_keys, rollout, run_rollout
from searchprime.cli.main import app
from searchprime.errors import BackendError
from searchprime.records import SearchHit, Trajectory, read_jsonl
from searchprime.records.sanitize import REPLACEMENT
from tests.agent.helpers import ScriptedLLM, http_responder, make_tasks, searcher_policy
from tests.llm.fake_openai import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]


def records(path: Path) -> list[Trajectory]:
    """Every record as written (repeated keys included)."""
    return list(read_jsonl(path, Trajectory, allow_partial_tail=False, latest=False))


def last_per_key(path: Path) -> dict[tuple[str, int], Trajectory]:
    return {t.key: t for t in records(path)}


class HostileHits:
    """Wraps a search backend; every hit's text gains a lone surrogate."""

    name = "hostile"

    def __init__(self, inner: Any):
        self.inner = inner

    async def search(self, queries: Any, topk: int) -> list[list[SearchHit]]:
        results = await self.inner.search(queries, topk)
        return [[h.model_copy(update={"text": h.text + " \udc80"}) for h in r] for r in results]

    def describe(self) -> dict[str, Any]:
        return {"kind": "hostile", "note": "\ud800"}

    async def aclose(self) -> None:
        pass


def test_lone_surrogates_everywhere_are_replaced_counted_and_written(bm25, tmp_path) -> None:
    def policy(messages, i):
        return searcher_policy(messages, i).replace("<think>", "<think>odd \ud800 ")

    out = tmp_path / "traj.jsonl"
    llm = ScriptedLLM(policy)
    summary = run_rollout(make_tasks(5), llm, HostileHits(bm25), None, out)
    trajs = records(out)
    assert len(trajs) == 5 and all(t.termination == "answer" for t in trajs)
    assert all(t.final_answer == "Asha Venn" for t in trajs)
    # per trajectory: 2 outputs + each hit + the search backend's describe()
    counts = [t.meta["surrogates_replaced"] for t in trajs]
    assert counts == [2 + len(t.turns[0].hits) + 1 for t in trajs] and min(counts) >= 4
    n = sum(counts)
    assert summary.surrogates_replaced == n and f"{n} invalid characters replaced" in summary.line()
    assert REPLACEMENT in trajs[0].turns[0].output and REPLACEMENT in trajs[0].turns[0].hits[0].text
    # the next prompt carried the cleaned text, so the policy server always gets valid UTF-8
    sent = [m.content for msgs, _ in llm.requests for m in msgs]
    assert all("\ud800" not in c and "\udc80" not in c for c in sent)


class Broken:
    """A policy that returns something that is not a Completion for one task."""

    name = "broken"

    async def complete(self, messages, params):
        if "variant 2)" in messages[1].content:
            return "a bare string"
        return await ScriptedLLM(searcher_policy).complete(messages, params)

    def count_tokens(self, messages) -> int:
        return 10

    def describe(self) -> dict[str, Any]:
        return {"kind": "broken"}

    async def aclose(self) -> None:
        pass


def test_a_trajectory_that_cannot_be_built_becomes_an_error_record(bm25, tmp_path) -> None:
    out = tmp_path / "traj.jsonl"
    summary = run_rollout(make_tasks(6), Broken(), bm25, None, out, concurrency=3)
    last = last_per_key(out)
    assert len(last) == 6 and summary.record_errors == 1 and summary.backend_errors == 0
    bad = last[("t002", 0)]
    assert bad.termination == "error" and bad.meta["error_kind"] == "record"
    assert bad.error.startswith("the trajectory could not be recorded: AttributeError: ")
    assert all(t.termination == "answer" for k, t in last.items() if k != ("t002", 0))
    # not a backend error: a rerun keeps it (it would only fail the same way again)
    assert ("t002", 0) in finished_keys(out)


def test_backend_errors_are_retried_on_rerun_unless_told_to_keep_them(bm25, tmp_path) -> None:
    def flaky(messages, i):
        if "variant 1)" in messages[1].content:
            raise ConnectionError("the server went away")
        return searcher_policy(messages, i)

    tasks = make_tasks(4)
    out = tmp_path / "traj.jsonl"
    first = run_rollout(tasks, ScriptedLLM(flaky), bm25, None, out, attempts=2, close=False)
    assert first.backend_errors == 2 and "2 backend errors, rerun to retry them" in first.line()
    errors = [t for t in records(out) if t.termination == "error"]
    assert {t.meta["error_kind"] for t in errors} == {"policy"}
    assert errors[0].error == "turn 0: policy failed: ConnectionError: the server went away"
    assert finished_keys(out) == {(t.id, a) for t in tasks for a in range(2)} - {
        ("t001", 0),
        ("t001", 1),
    }
    kept = run_rollout(tasks, ScriptedLLM(searcher_policy), bm25, None, out, attempts=2,
                       retry_errors=False, close=False)  # fmt: skip
    assert kept.written == 0 and kept.kept_errors == 2 and "2 earlier errors kept" in kept.line()
    again = run_rollout(tasks, ScriptedLLM(searcher_policy), bm25, None, out, attempts=2,
                        close=False)  # fmt: skip
    assert again.written == 2 and again.retried == 2 and again.backend_errors == 0
    # the later record supersedes: last-per-key is complete and error-free
    assert len(records(out)) == 10
    last = last_per_key(out)
    assert len(last) == 8 and {t.termination for t in last.values()} == {"answer"}
    nothing = run_rollout(tasks, ScriptedLLM(searcher_policy), bm25, None, out, attempts=2)
    assert nothing.written == 0 and nothing.skipped == 8


def test_a_failing_backend_stops_the_run_instead_of_filling_the_file(bm25, tmp_path) -> None:
    def down(messages, i):
        raise ConnectionRefusedError("connection refused")

    out = tmp_path / "traj.jsonl"
    with pytest.raises(BackendError) as info:
        asyncio.run(rollout(make_tasks(40), ScriptedLLM(down), bm25, None, out, concurrency=2,
                            stop_after_errors=5))  # fmt: skip
    message = str(info.value)
    assert message.startswith("stopped: 5 attempts in a row ended in backend errors")
    assert "ConnectionRefusedError: connection refused" in message and "\n" not in message
    assert 5 <= len(records(out)) <= 6  # not 40
    assert not Path(f"{out}.lock").exists()  # the lock is released on the way out


# ------------------------------------------------------------------ the CLI
def write_tasks(path: Path, n: int) -> Path:
    path.write_text("".join(t.model_dump_json() + "\n" for t in make_tasks(n)))
    return path


def test_cli_exit_1_on_backend_errors_and_flags_keep_the_yaml_fields(bm25_index, tmp_path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 4)
    out = tmp_path / "traj.jsonl"
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text(
        "policy:\n  kind: openai\n  base_url: http://127.0.0.1:9/v1\n  timeout_s: 5\n"
        "  max_retries: 2\n  backoff_base_s: 0.001\n  backoff_max_s: 0.002\n"
    )
    with FakeOpenAIServer(http_responder, fail_rate=1.0, faults=["500"], tokenize=False) as srv:
        args = ["rollout", "--tasks", str(tasks), "--out", str(out), "--config", str(cfg),
                "--policy-url", srv.base_url, "--search-index", str(bm25_index)]  # fmt: skip
        failed = CliRunner().invoke(app, args)
        said = " ".join(failed.output.split())
        assert failed.exit_code == 1, said
        assert "✗ 4 trajectories written" in said
        assert said.endswith("- 4 backend errors, rerun to retry them")
        trajs = records(out)
        policy = trajs[0].policy
        assert (policy["base_url"], policy["timeout_s"], policy["max_retries"]) == (
            srv.base_url,
            5.0,
            2,
        )  # --policy-url replaced only base_url
        assert srv.calls == 4 * 3  # max_retries 2 from the YAML: 3 attempts each
        srv.fail_rate = 0.0
        fixed = CliRunner().invoke(app, args)
        said = " ".join(fixed.output.split())
        assert fixed.exit_code == 0, said
        assert "4 earlier errors retried" in said and "✓" in said
        kept = CliRunner().invoke(app, [*args, "--no-retry-errors"])
        assert kept.exit_code == 0 and "4 already done" in " ".join(kept.output.split())
    assert {t.termination for t in last_per_key(out).values()} == {"answer"}


def test_dead_endpoint_exits_fast_with_one_line_then_a_live_rerun_completes(
    bm25_index, tmp_path
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 10)
    out = tmp_path / "traj.jsonl"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "searchprime", "rollout", "--tasks", str(tasks), "--out",
           str(out), "--search-index", str(bm25_index), "--policy-url"]  # fmt: skip
    start = time.perf_counter()
    dead = subprocess.run([*cmd, f"http://127.0.0.1:{port}/v1"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    took = time.perf_counter() - start
    assert dead.returncode == 2 and took < 30, (took, dead.stderr)
    lines = dead.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: policy not ready: "), dead.stderr
    assert "cannot connect" in lines[0] and "Traceback" not in dead.stderr
    assert not out.exists() or not out.read_text().strip()  # nothing was filled in
    with FakeOpenAIServer(http_responder, fail_rate=0.0, tokenize=False) as srv:
        live = subprocess.run([*cmd, srv.base_url], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert srv.model_lookups == 1  # once per run, not once per task
    assert live.returncode == 0, live.stderr
    last = last_per_key(out)
    assert len(last) == 10 and Counter(t.termination for t in last.values()) == {"answer": 10}
    assert json.loads(out.read_text().splitlines()[0])["policy"]["model"] == "fake-model"
