"""One writer per output: OutputLock itself, and two `rollout` processes on one --out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from searchprime.errors import ResumeError
from searchprime.records import Trajectory, read_jsonl
from searchprime.records.lock import LockHeldError, OutputLock, lock_path
from tests.agent.helpers import http_responder, make_tasks
from tests.llm.fake_openai import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from searchprime.records.lock import OutputLock; "
HOLD += "l = OutputLock(sys.argv[1], purpose='holder test').acquire(); print('held', flush=True); "
HOLD += "time.sleep(60)"


def test_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "traj.jsonl"
    with OutputLock(out, purpose="searchprime rollout") as first:
        assert first.held and lock_path(out) == tmp_path / "runs" / "traj.jsonl.lock"
        holder = json.loads(lock_path(out).read_text())
        assert holder["pid"] == os.getpid() and holder["purpose"] == "searchprime rollout"
        with pytest.raises(LockHeldError) as info:
            OutputLock(out).acquire()  # another open file description: refused like a process
        assert isinstance(info.value, ResumeError)
        message = str(info.value)
        assert f"pid {os.getpid()}" in message and "searchprime rollout" in message
        assert "\n" not in message and str(out) in message
    assert not lock_path(out).exists()  # released: the lock file is gone
    with OutputLock(out):  # and it can be taken again
        pass
    first.release()  # twice is harmless


def test_lock_left_by_a_killed_holder_never_blocks(tmp_path: Path) -> None:
    out = tmp_path / "traj.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"held"
        with pytest.raises(LockHeldError, match=f"pid {proc.pid} on .*holder test"):
            OutputLock(out).acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lock_path(out).exists()  # kill -9 left the file behind ...
    with OutputLock(out) as lock:  # ... but not the lock
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid() and lock.held


def test_folder_target_locks_inside_it(tmp_path: Path) -> None:
    folder = tmp_path / "experiment"
    folder.mkdir()
    with OutputLock(folder, purpose="searchprime experiment"):
        assert (folder / ".searchprime.lock").exists()
        with pytest.raises(LockHeldError, match="searchprime experiment"):
            OutputLock(folder).acquire()


def _slow(body: dict) -> str:
    time.sleep(0.05)
    return http_responder(body)


def test_two_rollouts_on_one_out_the_second_is_refused(bm25_index: Path, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(t.model_dump_json() + "\n" for t in make_tasks(16)))
    out = tmp_path / "traj.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    with FakeOpenAIServer(_slow, fail_rate=0.0, tokenize=False) as srv:
        args = [sys.executable, "-m", "searchprime", "rollout", "--tasks", str(tasks),
                "--out", str(out), "--policy-url", srv.base_url, "--search-index",
                str(bm25_index), "--concurrency", "2"]  # fmt: skip
        first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while not (out.exists() and out.read_bytes().count(b"\n") >= 1):
            assert time.time() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.01)
        second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        _, first_err = first.communicate(timeout=60)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), second.stderr
    assert f"pid {first.pid}" in lines[0] and "in use by another writer" in lines[0]
    assert first.returncode == 0, first_err
    keys = Counter(t.key for t in read_jsonl(out, Trajectory, allow_partial_tail=False))
    assert set(keys.values()) == {1} and len(keys) == 16
    assert not Path(f"{out}.lock").exists()
