"""Chaos: `searchprime rollout` (a real subprocess) over 300 tasks x 2 attempts against a policy
server that answers ~30% of requests with faults (500, 429, stalls past the timeout, truncated
bodies, no choices, lone surrogates, non-JSON, dropped connections, wrong shapes), killed with
SIGKILL twice mid-run, then rerun until it exits 0.

What must hold: every key ends with exactly one final record and it is not an error (the
transient failures were retried, in-run or by a rerun), no key was completed twice, no
traceback was printed, and the file is valid JSONL line by line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from searchprime.records import Trajectory
from searchprime.records.sanitize import REPLACEMENT
from tests.agent.helpers import http_responder, make_tasks
from tests.llm.fake_openai import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
N_TASKS, ATTEMPTS = 300, 2
FAULTS = ("500", "429", "stall", "truncated", "no_choices", "surrogate", "garbage", "drop",
          "shape")  # fmt: skip
CONFIG = """\
agent:
  max_turns: 4
attempts: 2
concurrency: 16
policy:
  timeout_s: 0.5
  max_retries: 3
  backoff_base_s: 0.002
  backoff_max_s: 0.01
"""


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow  # 12-23 s on the shared 2-CPU box: 4 process starts, ~1,800 requests
def test_chaos_rollout_killed_twice_converges(bm25_index: Path, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(t.model_dump_json() + "\n" for t in make_tasks(N_TASKS)))
    cfg = tmp_path / "chaos.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "traj.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    stderr: list[str] = []
    exits: list[int] = []
    with FakeOpenAIServer(
        http_responder, fail_rate=0.3, seed=13, stall_s=1.0, faults=FAULTS, tokenize=False
    ) as srv:
        cmd = [sys.executable, "-m", "searchprime", "rollout", "--tasks", str(tasks),
               "--out", str(out), "--config", str(cfg), "--policy-url", srv.base_url,
               "--search-index", str(bm25_index)]  # fmt: skip
        for grow_by in (150, 200):  # two runs killed with SIGKILL mid-run
            target = lines_in(out) + grow_by
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.time() + 120
            while lines_in(out) < target:
                assert proc.poll() is None, proc.communicate()
                assert time.time() < deadline, "the rollout made no progress"
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            stderr.append(proc.communicate()[1].decode())
            exits.append(proc.returncode)
        for _ in range(6):  # rerun until it exits 0 (1: some attempts ended in backend errors)
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            stderr.append(done.stderr)
            exits.append(done.returncode)
            if done.returncode == 0:
                break
            assert done.returncode == 1, done.stderr
        injected = dict(srv.faults_injected)
        calls = srv.calls

    assert exits[:2] == [-signal.SIGKILL] * 2 and exits[-1] == 0, (exits, stderr[-1])
    assert not any("Traceback" in err for err in stderr), [e for e in stderr if "Traceback" in e]
    # every fault kind really happened, about 30% of the chat requests
    assert set(injected) == set(FAULTS), injected
    assert 0.2 < sum(injected.values()) / calls < 0.4, (injected, calls)

    # valid JSONL line by line; the last record of each key is final and not an error
    by_key: dict[tuple[str, int], list[Trajectory]] = defaultdict(list)
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    for line in raw.decode("utf-8").splitlines():
        traj = Trajectory.model_validate(json.loads(line))
        by_key[traj.key].append(traj)
    assert set(by_key) == {(t.id, a) for t in make_tasks(N_TASKS) for a in range(ATTEMPTS)}
    for key, records in by_key.items():
        assert records[-1].termination != "error", (key, records[-1].error)
        assert all(r.termination == "error" for r in records[:-1]), key  # never done twice
        assert records[-1].final_answer == "Asha Venn", (key, records[-1].final_answer)
    # lone surrogates in replies were replaced and counted, never fatal
    final = [records[-1] for records in by_key.values()]
    replaced = [t for t in final if t.meta.get("surrogates_replaced")]
    assert replaced and all(REPLACEMENT in t.turns[0].output + t.turns[-1].output for t in replaced)
