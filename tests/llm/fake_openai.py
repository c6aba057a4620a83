"""A real, fault-injecting OpenAI-compatible HTTP server on 127.0.0.1 for tests.

Import it as ``from tests.llm.fake_openai import FakeOpenAIServer``. It runs the standard
library's ``ThreadingHTTPServer`` in a daemon thread (no extra dependencies, starts in ms) and
speaks the OpenAI wire format that :class:`searchprime.llm.openai_http.OpenAIChat` uses:

- ``GET  /v1/models``            -> ``{"object": "list", "data": [{"id": model}]}``
- ``POST /v1/chat/completions``  -> one choice whose text comes from ``responder``
- ``POST /tokenize``             -> vLLM style ``{"count": n}`` (1 token per 4 chars) when
  ``tokenize=True``, else 404
- ``GET  /health``               -> ``{"status": "ok"}``

``responder(body) -> str | dict``: ``body`` is the decoded request JSON (``messages``,
``max_tokens``, ``stop``, ``seed``, ...). Return the assistant text, or a dict with any of
``content``, ``reasoning_content``, ``reasoning``, ``finish_reason``. Like real servers, the
server cuts the text at the first stop string in ``body["stop"]`` and drops the stop itself
(``finish_reason="stop"``), so clients must restore closing tags.

Faults. Each chat request fails with probability ``fail_rate`` (decided from a hash of
``seed``, the request body and how many times that exact body was seen before, so the
sequence of faults is the same whatever order concurrent requests arrive in, and a retried
request gets a fresh draw). The fault kind is drawn from ``faults``:

- ``"500"``: HTTP 500 with a JSON error body;
- ``"503"``: HTTP 503 with ``Retry-After: <retry_after>``;
- ``"429"``: HTTP 429 with ``Retry-After: <retry_after>``;
- ``"stall"``: sleep ``stall_s`` seconds before answering normally (a client with a shorter
  timeout sees a timeout; the late answer is discarded);
- ``"drop"``: close the connection without any response;
- ``"garbage"``: HTTP 200 with a body that is not JSON.

Hostile replies (not drawn unless named in ``faults``, see :data:`HOSTILE_KINDS`):

- ``"truncated"``: HTTP 200 whose body stops half way (``Content-Length`` promises more);
- ``"no_choices"``: HTTP 200 JSON without usable ``choices`` (empty, or only an ``error``);
- ``"shape"``: HTTP 200 JSON of a wrong shape (a string choice, a string message, a numeric
  content, a top-level list, ...), cycling through :data:`WRONG_SHAPES`;
- ``"surrogate"``: a normal answer whose content starts with a lone surrogate ``\ud800``
  (valid JSON; no UTF-8 encoder takes it).

``script=[...]`` forces the first ``len(script)`` chat requests (in arrival order) to the
listed faults (``None`` = answer normally), for exact tests. Counters: ``calls`` (chat
requests received), ``ok`` (answered normally), ``faults_injected`` (per kind), ``requests``
(decoded bodies), ``auth_headers`` (the ``Authorization`` header of each chat request),
``model_lookups`` (``GET /v1/models`` requests), ``tokenize_calls`` (``POST /tokenize``).
``require_key="..."`` answers 401 to chat requests without ``Bearer <key>``.

    >>> with FakeOpenAIServer(lambda body: "<answer>Paris</answer>", fail_rate=0.3) as srv:
    ...     llm = OpenAIChat(srv.base_url, backoff_base_s=0.01)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "ALL_KINDS",
    "FAULT_KINDS",
    "HOSTILE_KINDS",
    "WRONG_SHAPES",
    "FakeOpenAIServer",
    "echo_responder",
]

FAULT_KINDS = ("500", "503", "429", "stall", "drop", "garbage")
HOSTILE_KINDS = ("truncated", "no_choices", "shape", "surrogate")
ALL_KINDS = FAULT_KINDS + HOSTILE_KINDS

#: 200 bodies whose shape no client can use (the ``"shape"`` fault cycles through them).
WRONG_SHAPES: tuple[Any, ...] = (
    {"choices": ["<answer>x</answer>"]},
    {"choices": [{"message": "<answer>x</answer>", "finish_reason": "stop"}]},
    {"choices": [{"message": {"role": "assistant", "content": 42}}]},
    [{"choices": []}],
    {"choices": {"0": {"message": {"content": "x"}}}},
    "a string",
    {"choices": [{"message": {"content": {"text": "x"}}}]},
    {"choices": [{"message": {"content": "ok", "reasoning_content": ["not", 1]}}]},
)

Responder = Callable[[dict[str, Any]], "str | dict[str, Any]"]


def echo_responder(body: dict[str, Any]) -> str:
    """Answer with the last user message wrapped as an answer action."""
    last = body["messages"][-1]["content"] if body.get("messages") else ""
    return f"<answer>{last[:50]}</answer>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        return json.loads(raw or b"{}")

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        fake = self.server.fake
        if self.path.rstrip("/") == "/v1/models":
            with fake._lock:
                fake.model_lookups += 1
            self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
        elif self.path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        fake = self.server.fake
        try:
            body = self._body()
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        if self.path == "/tokenize" and fake.tokenize:
            with fake._lock:
                fake.tokenize_calls += 1
            text = "".join(m.get("content", "") for m in body.get("messages", []))
            text += body.get("content", "")
            self._send(200, {"count": max(1, len(text) // 4), "tokens": []})
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        fault = fake._register(body, self.headers.get("Authorization"))
        if fake.require_key and self.headers.get("Authorization") != f"Bearer {fake.require_key}":
            self._send(401, {"error": {"message": "invalid api key"}})
            return
        if fault == "500":
            self._send(500, {"error": {"message": "injected internal error"}})
        elif fault in ("503", "429"):
            headers = {"Retry-After": fake.retry_after}
            self._send(int(fault), {"error": {"message": f"injected {fault}"}}, headers)
        elif fault == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
        elif fault == "garbage":
            self._send(200, b"<html>not json")
        elif fault == "truncated":
            raw = json.dumps(fake._completion(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw[: len(raw) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
        elif fault == "no_choices":
            empty = {"object": "chat.completion", "choices": []}
            error = {"error": {"message": "the model is overloaded"}}
            self._send(200, empty if fake.calls % 2 else error)
        elif fault == "shape":
            self._send(200, WRONG_SHAPES[fake.calls % len(WRONG_SHAPES)])
        else:
            if fault == "stall":
                time.sleep(fake.stall_s)
            try:
                self._send(200, fake._completion(body, surrogate=fault == "surrogate"))
            except (BrokenPipeError, ConnectionResetError):
                pass
            else:
                with fake._lock:
                    fake.ok += 1


class FakeOpenAIServer:
    """Context manager running the fake server; see the module docstring for the protocol.

    Args:
        responder: ``body -> text | {content, reasoning_content, reasoning, finish_reason}``.
        fail_rate: probability that a chat request gets a fault.
        seed: seeds the fault draws.
        stall_s: how long a ``"stall"`` fault waits before answering.
        faults: the fault kinds to draw from (default: all of :data:`FAULT_KINDS`).
        retry_after: the ``Retry-After`` header value sent with 429/503 (seconds or HTTP date).
        script: faults forced on the first chat requests, in arrival order.
        model: the model id listed by ``/v1/models``.
        tokenize: serve vLLM-style ``POST /tokenize``.
        require_key: demand ``Authorization: Bearer <require_key>``.
    """

    def __init__(
        self,
        responder: Responder = echo_responder,
        fail_rate: float = 0.3,
        seed: int = 0,
        stall_s: float = 2.0,
        *,
        faults: Sequence[str] = FAULT_KINDS,
        retry_after: str = "0",
        script: Sequence[str | None] = (),
        model: str = "fake-model",
        tokenize: bool = True,
        require_key: str | None = None,
    ):
        unknown = set(faults) - set(ALL_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.responder = responder
        self.fail_rate = fail_rate
        self.seed = seed
        self.stall_s = stall_s
        self.faults = tuple(faults)
        self.retry_after = retry_after
        self.script = list(script)
        self.model = model
        self.tokenize = tokenize
        self.require_key = require_key
        self.calls = 0
        self.ok = 0
        self.model_lookups = 0
        self.tokenize_calls = 0
        self.faults_injected: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAIServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"{self.root_url}/v1"

    # ------------------------------------------------------------------ behaviour
    def _register(self, body: dict[str, Any], auth: str | None) -> str | None:
        """Count the request and decide its fault (or ``None``)."""
        canonical = json.dumps(body, sort_keys=True)
        with self._lock:
            index = self.calls
            self.calls += 1
            self.requests.append(body)
            self.auth_headers.append(auth)
            occurrence = self._seen[canonical]
            self._seen[canonical] += 1
            if index < len(self.script):
                fault = self.script[index]
            else:
                digest = hashlib.sha256(f"{self.seed}|{occurrence}|{canonical}".encode()).digest()
                draw = int.from_bytes(digest[:8], "big") / 2**64
                pick = int.from_bytes(digest[8:12], "big")
                fault = None
                if self.faults and draw < self.fail_rate:
                    fault = self.faults[pick % len(self.faults)]
            if fault is not None:
                self.faults_injected[fault] += 1
        return fault

    def _completion(self, body: dict[str, Any], surrogate: bool = False) -> dict[str, Any]:
        reply = self.responder(body)
        message = {"content": reply} if isinstance(reply, str) else dict(reply)
        text = message.get("content") or ""
        finish = message.get("finish_reason", "stop")
        cut = [text.find(s) for s in body.get("stop") or [] if s and s in text]
        if cut:
            text = text[: min(cut)]
            finish = "stop"
        if surrogate:
            text = "\ud800" + text  # json.dumps writes it as the escape \ud800
        out: dict[str, Any] = {"role": "assistant", "content": text}
        for key in ("reasoning_content", "reasoning"):
            if key in message:
                out[key] = message[key]
        prompt_chars = sum(len(m.get("content", "")) for m in body.get("messages", []))
        return {
            "id": f"chatcmpl-{self.calls}",
            "object": "chat.completion",
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": out, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": max(1, prompt_chars // 4),
                "completion_tokens": max(1, len(text) // 4),
                "total_tokens": max(1, prompt_chars // 4) + max(1, len(text) // 4),
            },
        }
