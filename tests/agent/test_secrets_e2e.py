"""A planted API key never appears, whole or as any 8-character piece, in any file or output of
`searchprime rollout` against a server that echoes the Authorization header everywhere it can:
error bodies (with the key on both sides of the 300-character excerpt cut), retried 5xx/429
bodies, non-JSON bodies, the answer text, the reasoning and the model id."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from searchprime.records import Trajectory, read_jsonl
from tests.agent.helpers import make_tasks

REPO = Path(__file__).resolve().parents[2]
PREFIX = len('{"error": {"message": "')  # where the message starts in the excerpt
# (status, where the key starts in the body) per task variant; 400 is not retried
ERRORS = [(400, at) for at in (100, 285, 292, 295, 299, 300, 301, 310, 400)]
ERRORS += [(500, 296), (429, 298), (200, 297)]  # 200 here: a body that is not JSON
N_TASKS = len(ERRORS) + 2  # + an answer echoing the key, + reasoning echoing it


class _Echo(BaseHTTPRequestHandler):
    auth_seen: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the model id itself echoes the header
        auth = self.headers.get("Authorization", "")
        self._reply(200, json.dumps({"data": [{"id": f"echo {auth}"}]}).encode())

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        auth = self.headers.get("Authorization", "")
        type(self).auth_seen.append(auth)
        variant = int(re.search(r"variant (\d+)", body["messages"][1]["content"]).group(1))
        if variant < len(ERRORS):
            status, at = ERRORS[variant]
            message = "x" * (at - PREFIX - len("Bearer ")) + f"{auth} is not allowed"
            data = json.dumps({"error": {"message": message}}).encode()
            self._reply(status, data[:-3] if status == 200 else data)
            return
        content, reasoning = "<answer>Asha Venn</answer>", f"my header was {auth}"
        if variant == len(ERRORS):
            content, reasoning = f"<answer>{auth}</answer>", None
        message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
        reply = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        self._reply(200, json.dumps(reply).encode())


def test_planted_key_never_written_or_printed(bm25_index: Path, tmp_path: Path) -> None:
    key = f"sk-planted-{uuid.uuid4().hex}{uuid.uuid4().hex[:6]}"
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(t.model_dump_json() + "\n" for t in make_tasks(N_TASKS)))
    out = tmp_path / "runs" / "traj.jsonl"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    policy = (
        f"policy:\n  base_url: {url}\n  api_key_env: SP_PLANTED\n  max_retries: 1\n"
        "  backoff_base_s: 0.001\n  backoff_max_s: 0.002\nagent:\n  max_turns: 2\n"
    )
    first, second = tmp_path / "all.yaml", tmp_path / "stop.yaml"
    first.write_text(policy + "stop_after_errors: 0\n")
    second.write_text(policy + "stop_after_errors: 2\nconcurrency: 1\n")
    env = {**os.environ, "SP_PLANTED": key, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "300"}
    cmd = [sys.executable, "-m", "searchprime", "rollout", "--tasks", str(tasks), "--out",
           str(out), "--search-index", str(bm25_index), "--config"]  # fmt: skip
    try:
        runs = [subprocess.run([*cmd, str(cfg)], env=env, capture_output=True, text=True,
                               timeout=120) for cfg in (first, second)]  # fmt: skip
    finally:
        httpd.shutdown()
    assert runs[0].returncode == 1, runs[0].stderr  # backend errors recorded: exit 1
    assert runs[1].returncode == 2, runs[1].stderr  # retried, stopped after 2 in a row
    assert runs[1].stderr.count("error: stopped: 2 attempts in a row") == 1
    assert set(_Echo.auth_seen) == {f"Bearer {key}"}  # the key really went out
    last = {t.key: t for t in read_jsonl(out, Trajectory)}
    assert len(last) == N_TASKS
    errors = [t.error for t in last.values() if t.termination == "error"]
    assert len(errors) == len(ERRORS)
    assert any("HTTP 400" in e and "Bearer ***" in e for e in errors)  # masked, not just cut
    answered = last[(f"t{len(ERRORS):03d}", 0)]
    assert answered.final_answer == "Bearer ***" and answered.policy["model"] == "echo Bearer ***"

    pieces = {key[i : i + 8] for i in range(len(key) - 7)}
    outputs = {f"run {i} {stream}": getattr(r, stream) for i, r in enumerate(runs)
               for stream in ("stdout", "stderr")}  # fmt: skip
    outputs.update(
        {str(p): p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()}
    )
    assert str(out) in outputs
    for where, text in outputs.items():
        leaked = [p for p in pieces if p in text]
        assert not leaked, f"{where} holds {leaked}"
