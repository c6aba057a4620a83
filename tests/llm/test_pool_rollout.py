"""`searchprime rollout --policy-url A --policy-url B`: both servers used; one killed mid-run
(SIGKILL, requests in flight) and no trajectory lost.

Each server is its own process (the fake OpenAI server of tests.llm.fake_openai, speaking the
real wire format) so the kill is a real crash: connections drop and the port stops answering.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from searchprime.cli.main import app
from searchprime.records import Trajectory, read_jsonl
from searchprime.search.bm25 import build_bm25_index

REPO = Path(__file__).resolve().parents[2]

# A scripted policy served over HTTP: search first, answer once results came back. With
# DIE_AT > 0 the process kills itself (SIGKILL) when that many chat requests have arrived.
SERVER = r"""
import os, signal, sys, threading, time
from tests.llm.fake_openai import FakeOpenAIServer

die_at = int(sys.argv[1])
seen = [0]
lock = threading.Lock()

def respond(body):
    with lock:
        seen[0] += 1
        n = seen[0]
    if n == die_at:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    if any(m["role"] == "assistant" for m in body["messages"]):
        return "<answer>Paris</answer>"
    return "<search>capital of France</search>"

server = FakeOpenAIServer(respond, fail_rate=0, model="pool-model").start()
print(server.base_url, flush=True)
threading.Event().wait()
"""


def _start(die_at: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(die_at)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    return proc, url


def _inputs(tmp_path: Path, n: int) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus.jsonl"
    docs = [("paris", '"Paris"\nParis is the capital of France.'), ("lyon", '"Lyon"\nA city.')]
    corpus.write_text("".join(json.dumps({"id": i, "contents": c}) + "\n" for i, c in docs))
    build_bm25_index(corpus, tmp_path / "idx")
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"id": f"t{i}", "question": "Capital of France?", "answers": ["Paris"]}
            for i in range(n)]  # fmt: skip
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tasks, tmp_path / "idx"


def test_two_servers_one_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    tasks, index = _inputs(tmp_path, 16)
    config = tmp_path / "run.yaml"  # the flags add kind and URLs; retry settings come from here
    config.write_text(yaml.safe_dump({"policy": {"max_retries": 1, "backoff_base_s": 0.05,
                                                 "cooldown_s": 60}}))  # fmt: skip
    doomed, doomed_url = _start(die_at=5)
    steady, steady_url = _start(die_at=0)
    out = tmp_path / "out.jsonl"
    try:
        args = ["rollout", "--tasks", str(tasks), "--out", str(out), "--config", str(config),
                "--policy-url", doomed_url, "--policy-url", steady_url,
                "--search-index", str(index), "--thinking", "none", "--max-turns", "4",
                "--concurrency", "6"]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert doomed.wait(timeout=10) == -9  # it really was killed, mid-run
    finally:
        for proc in (doomed, steady):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
    assert result.exit_code == 0, result.output
    assert "on 2 servers" in result.output
    records = list(read_jsonl(out, Trajectory))
    assert len(records) == 16  # one record per task: nothing lost, nothing re-run
    assert {r.termination for r in records} == {"answer"}, [r.error for r in records]
    assert all(r.final_answer == "Paris" for r in records)
    served = [t.policy_meta["server"] for r in records for t in r.turns]
    assert len(served) == 32
    assert served.count(doomed_url) >= 1 and served.count(steady_url) >= 16
    assert records[0].policy["base_url"] == [doomed_url, steady_url]
