"""Acceptance: rollouts over real HTTP with faults, kill -9 and resume, and no leaked secrets.

The policy is a real OpenAI-wire server on 127.0.0.1 (tests.llm.fake_openai) answering with a
deterministic searcher, reached through searchprime.llm.openai_http.OpenAIChat; search is a
real BM25 index.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from searchprime.agent.loop import AgentConfig
from searchprime.agent.rollout import rollout, run_rollout
from searchprime.llm.openai_http import OpenAIChat
from searchprime.records import Trajectory, read_jsonl
from tests.agent.helpers import http_responder, make_tasks
from tests.conftest import sigint_default
from tests.llm.fake_openai import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]


def test_fault_injection_50_tasks_exactly_once(bm25, tmp_path: Path) -> None:
    tasks = make_tasks(50)
    out = tmp_path / "traj.jsonl"
    with FakeOpenAIServer(
        http_responder,
        fail_rate=0.3,
        seed=3,
        stall_s=2.0,
        faults=("500", "429", "stall"),
        retry_after="0",
        tokenize=False,
    ) as server:
        llm = OpenAIChat(
            server.base_url, timeout_s=0.6, max_retries=8, backoff_base_s=0.01, concurrency=16
        )
        summary = run_rollout(tasks, llm, bm25, AgentConfig(), out, concurrency=8, close=False)
        asyncio.run(llm.aclose())
        injected = dict(server.faults_injected)
        calls = server.calls
    trajs = list(read_jsonl(out, Trajectory, allow_partial_tail=False))
    assert len(trajs) == 50 == summary.written
    assert len({t.key for t in trajs}) == 50
    assert {t.task_id for t in trajs} == {t.id for t in tasks}
    # every kind of fault really happened, about 30% of the calls
    assert set(injected) == {"500", "429", "stall"}
    assert 0.15 < sum(injected.values()) / calls < 0.45
    # retries absorbed them: the agents answered (an exhausted retry budget would be an error
    # record, still exactly one per task)
    assert Counter(t.termination for t in trajs)["answer"] >= 48
    assert all(t.final_answer == "Asha Venn" for t in trajs if t.termination == "answer")
    assert any(turn.policy_meta.get("retries") for t in trajs for turn in t.turns)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from searchprime.agent.loop import AgentConfig
    from searchprime.agent.rollout import run_rollout
    from searchprime.llm.openai_http import OpenAIChat
    from searchprime.search.bm25 import BM25Search
    from searchprime.tasks import load_tasks

    base_url, index, tasks_path, out = sys.argv[1:5]
    llm = OpenAIChat(base_url, api_key_env="SP_PLANTED_KEY", timeout_s=2.0, backoff_base_s=0.01)
    summary = run_rollout(load_tasks(tasks_path), llm, BM25Search.load(index, threads=1),
                          AgentConfig(max_turns=4), out, attempts=2, concurrency=4)
    print(summary.line())
    """
)


def _slow_responder(body: dict) -> str:
    time.sleep(0.03)
    return http_responder(body)


def test_kill_9_then_rerun_exactly_once_and_no_leaked_key(bm25_index, tmp_path: Path) -> None:
    key = f"sk-planted-{uuid.uuid4().hex}"
    tasks = make_tasks(30)
    tasks_path = tmp_path / "tasks.jsonl"
    tasks_path.write_text("".join(t.model_dump_json() + "\n" for t in tasks))
    out = tmp_path / "runs" / "traj.jsonl"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "SP_PLANTED_KEY": key, "PYTHONPATH": str(REPO / "src")}
    with FakeOpenAIServer(_slow_responder, fail_rate=0.1, require_key=key, tokenize=False) as srv:
        args = [
            sys.executable,
            str(script),
            srv.base_url,
            str(bm25_index),
            str(tasks_path),
            str(out),
        ]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if out.exists() and len(out.read_bytes().splitlines()) >= 8:
                break
            if proc.poll() is not None:
                pytest.fail(f"rollout ended before the kill: {proc.stdout.read().decode()}")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        killed_output = proc.communicate()[0].decode()
        assert proc.returncode == -signal.SIGKILL
        n_before = len([ln for ln in out.read_bytes().splitlines() if ln.strip()])
        assert 8 <= n_before < 60
        rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert "written to" in rerun.stdout
        assert all(h == f"Bearer {key}" for h in srv.auth_headers)  # the key was really used
    trajs = list(read_jsonl(out, Trajectory, allow_partial_tail=False, latest=False))
    pairs = Counter(t.key for t in trajs)
    assert set(pairs) == {(t.id, a) for t in tasks for a in range(2)}
    assert set(pairs.values()) == {1}
    # the planted key is nowhere in what the runs wrote or printed
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert out in written
    for path in written:
        assert key.encode() not in path.read_bytes(), path
    assert key not in killed_output + rerun.stdout + rerun.stderr


class _LeakyHandler(BaseHTTPRequestHandler):
    """A server that echoes the Authorization header in its error bodies."""

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, {"object": "list", "data": [{"id": "leaky"}]})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        self._reply(400, {"error": {"message": f"bad request from {auth}"}})


def test_key_echoed_by_server_is_scrubbed_from_error_records(bm25, tmp_path, monkeypatch) -> None:
    key = f"sk-planted-{uuid.uuid4().hex}"
    monkeypatch.setenv("SP_PLANTED_KEY", key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _LeakyHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        llm = OpenAIChat(url, api_key_env="SP_PLANTED_KEY", timeout_s=5, max_retries=0)
        out = tmp_path / "traj.jsonl"
        summary = asyncio.run(rollout(make_tasks(3), llm, bm25, None, out))
    finally:
        httpd.shutdown()
    assert summary.by_termination == {"error": 3}
    text = out.read_text()
    assert "bad request from" in text and "HTTP 400" in text
    assert key not in text


def test_ctrl_c_leaves_whole_records_and_rerun_completes(bm25_index, tmp_path: Path) -> None:
    tasks = make_tasks(20)
    tasks_path = tmp_path / "tasks.jsonl"
    tasks_path.write_text("".join(t.model_dump_json() + "\n" for t in tasks))
    out = tmp_path / "traj.jsonl"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "SP_PLANTED_KEY": "k", "PYTHONPATH": str(REPO / "src")}
    with FakeOpenAIServer(_slow_responder, fail_rate=0.0, tokenize=False) as srv:
        args = [sys.executable, str(script), srv.base_url, str(bm25_index), str(tasks_path),
                str(out)]  # fmt: skip
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default
        )
        deadline = time.time() + 60
        while time.time() < deadline and not (out.exists() and out.read_bytes().count(b"\n") >= 4):
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode != 0 and b"KeyboardInterrupt" in err
        data = out.read_bytes()
        assert data.endswith(b"\n")  # cancellation happens between whole records
        n_before = data.count(b"\n")
        assert 4 <= n_before < 40
        assert subprocess.run(args, env=env, capture_output=True, timeout=120).returncode == 0
    pairs = Counter(
        t.key for t in read_jsonl(out, Trajectory, allow_partial_tail=False, latest=False)
    )
    assert set(pairs) == {(t.id, a) for t in tasks for a in range(2)} and set(pairs.values()) == {1}
