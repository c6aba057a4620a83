"""`searchprime serve-model` as a real subprocess: prints the URL, serves, stops on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import sigint_default

CLI = Path(sys.executable).parent / "searchprime"


@pytest.mark.skipif(not CLI.exists(), reason="the searchprime console script is not installed")
def test_serve_model_cli_serves_and_stops(smollm2_gguf):
    env = dict(os.environ, SP_SERVE_KEY="k-123")
    proc = subprocess.Popen(
        [
            str(CLI),
            "serve-model",
            "--port",
            "0",
            "--parallel",
            "1",
            "--ctx-size",
            "1024",
            "--threads",
            "1",
            "--api-key-env",
            "SP_SERVE_KEY",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=sigint_default,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:") and line.endswith("/v1"), line
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        denied = httpx.post(f"{line}/chat/completions", json=body, timeout=30)
        assert denied.status_code == 401
        ok = httpx.post(
            f"{line}/chat/completions",
            json=body,
            headers={"Authorization": "Bearer k-123"},
            timeout=60,
        )
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("serve-model did not stop on SIGINT")
    assert proc.returncode == 0, err
    assert "k-123" not in err
