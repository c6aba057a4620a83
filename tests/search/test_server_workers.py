"""`searchprime index serve --workers 2`: both processes answer correctly; none outlives the
server, whether it is stopped (SIGTERM) or killed (SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from searchprime.search.bm25 import build_bm25_index

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses Linux process semantics")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    """The pids still running after ``timeout`` (zombies of a live parent count as gone)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {p for p in pids if _alive(p) and not _zombie(p)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return False


def _serve(index: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-c", "from searchprime.cli.main import main; main()", "index", "serve",
           str(index), "--port", str(port), "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def fresh() -> Iterator[httpx.Client]:
    """No keep-alive: every request opens a connection, which any worker may accept."""
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10) as client:
        yield client


def _worker_pids(
    fresh: httpx.Client, proc: subprocess.Popen, url: str, timeout: float = 60.0
) -> set[int]:
    """Ask /health until both workers have answered."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < 2:
        assert proc.poll() is None, "server exited"
        assert time.monotonic() < deadline, f"only workers {pids} answered"
        try:
            with ThreadPoolExecutor(4) as pool:
                got = list(pool.map(lambda _: fresh.get(url + "/health"), range(8)))
            pids |= {r.json()["pid"] for r in got}
        except httpx.TransportError:
            time.sleep(0.2)
    return pids


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    from tests.search.conftest import toy_rows, write_jsonl

    corpus = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    build_bm25_index(corpus, tmp_path / "idx")
    return tmp_path / "idx"


def test_two_workers_both_answer_correctly_and_stop_with_the_server(
    index: Path, fresh: httpx.Client
) -> None:
    proc, url = _serve(index)
    pids: set[int] = set()
    try:
        pids = _worker_pids(fresh, proc, url)
        assert proc.pid not in pids and len(pids) == 2

        expected = {"capital of Germany": {"berlin"}, "river Lyon": {"lyon", "rhone"}}

        def retrieve(i: int) -> tuple[int, str, str]:
            query = list(expected)[i % 2]
            r = fresh.post(url + "/retrieve", json={"queries": [query], "topk": 1})
            assert r.status_code == 200, r.text
            return int(r.headers["X-Searchprime-Worker"]), query, r.json()["result"][0][0]["id"]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(retrieve, range(64)))
        assert {pid for pid, _, _ in answers} == pids  # both workers served /retrieve
        wrong = [(pid, q, doc) for pid, q, doc in answers if doc not in expected[q]]
        assert not wrong
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = _wait_gone(pids)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "workers outlived the server"


def test_workers_exit_when_the_server_is_killed(index: Path, fresh: httpx.Client) -> None:
    proc, url = _serve(index)
    pids: set[int] = set()
    try:
        pids = _worker_pids(fresh, proc, url)
        proc.kill()  # SIGKILL: the supervisor cannot stop its workers itself
        proc.wait(timeout=10)
        assert not _wait_gone(pids), "orphaned workers still running"
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:  # never leave an orphan behind, even when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_below_one_is_a_config_error(index: Path) -> None:
    from typer.testing import CliRunner

    from searchprime.cli.main import app

    res = CliRunner().invoke(app, ["index", "serve", str(index), "--workers", "0"])
    assert res.exit_code != 0 and "--workers must be >= 1, got 0" in str(res.exception)
