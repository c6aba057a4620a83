"""`searchprime index build | query | serve` end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from searchprime.cli.main import app
from searchprime.search.bm25 import read_manifest

runner = CliRunner()


def test_build_and_query(toy_corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    res = runner.invoke(app, ["index", "build", str(toy_corpus), str(idx), "--kind", "bm25"])
    assert res.exit_code == 0, res.output
    assert "bm25 index of 12 passages" in res.output
    assert read_manifest(idx)["num_docs"] == 12
    res = runner.invoke(app, ["index", "query", str(idx), "capital of France", "-k", "2"])
    assert res.exit_code == 0, res.output
    assert "Doc 1 (Title: Paris) [Source: encyclopedia | en.wikipedia.org]" in res.output
    assert "Doc 3" not in res.output
    res = runner.invoke(app, ["index", "query", str(idx), "cats", "dogs", "--json", "-k", "1"])
    lines = [json.loads(x) for x in res.output.strip().splitlines()]
    assert res.exit_code == 0 and [x["hits"][0]["doc_id"] for x in lines] == ["cats", "dogs"]


def test_build_skip_bad_and_errors(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"id": "a", "text": "alpha"}\n{"id": "b"}\n', encoding="utf-8")
    res = runner.invoke(app, ["index", "build", str(corpus), str(tmp_path / "i")])
    assert res.exit_code != 0 and f"{corpus}:2: contents" in str(res.exception)
    res = runner.invoke(app, ["index", "build", str(corpus), str(tmp_path / "j"), "--skip-bad"])
    assert res.exit_code == 0 and "1 bad records skipped" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_subprocess_with_token(toy_index: Path, workers: int) -> None:
    port = _free_port()
    env = {**os.environ, "SP_SERVE_TOKEN": "tok"}
    cmd = [sys.executable, "-c", "from searchprime.cli.main import main; main()", "index", "serve"]
    cmd += [str(toy_index), "--port", str(port), "--token-env", "SP_SERVE_TOKEN"]
    cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        body = {"queries": ["river Lyon"], "topk": 1, "return_scores": True}
        assert httpx.post(url + "/retrieve", json=body).status_code == 401
        r = httpx.post(url + "/retrieve", json=body, headers={"Authorization": "Bearer tok"})
        assert r.json()["result"][0][0]["document"]["id"] in {"lyon", "rhone"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
