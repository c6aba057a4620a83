"""OpenAIChat against hostile replies: malformed 200s are retried, errors are one readable line,
a dead endpoint is named as such, the model is looked up once, and no piece of the key leaks."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from searchprime.errors import LLMError
from searchprime.llm.base import SamplingParams
from searchprime.llm.openai_http import EndpointUnreachable, OpenAIChat
from searchprime.records import Message
from tests.llm.fake_openai import WRONG_SHAPES, FakeOpenAIServer

MSGS = [Message(role="user", content="Question: where is the Eiffel tower?")]
STOP = SamplingParams(max_tokens=32, temperature=0.0, stop=["</search>", "</answer>"])


def fast(url: str, **kwargs) -> OpenAIChat:
    kwargs = {"backoff_base_s": 0.005, "backoff_max_s": 0.01, "timeout_s": 5.0, **kwargs}
    return OpenAIChat(url, **kwargs)


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def key_pieces(key: str) -> list[str]:
    return [key[i : i + 8] for i in range(len(key) - 7)]


def test_every_malformed_200_is_retried_then_the_answer_arrives() -> None:
    script = ["truncated", "no_choices", "no_choices", *["shape"] * len(WRONG_SHAPES), "garbage"]
    with FakeOpenAIServer(fail_rate=0.0, script=script) as srv:
        llm = fast(srv.base_url, model="m", max_retries=len(script))
        out = asyncio.run(llm.complete(MSGS, STOP))
    assert out.text.startswith("<answer>") and out.meta == {"retries": len(script)}
    assert srv.calls == len(script) + 1
    # the shape fault really served every wrong shape (it cycles on the call count)
    assert srv.faults_injected["shape"] == len(WRONG_SHAPES)


@pytest.mark.parametrize("fault", ["shape", "no_choices", "truncated"])
def test_giving_up_on_a_malformed_reply_is_one_readable_line(fault: str) -> None:
    with FakeOpenAIServer(fail_rate=1.0, faults=[fault]) as srv:
        llm = fast(srv.base_url, model="m", max_retries=2)
        with pytest.raises(LLMError) as info:
            asyncio.run(llm.complete(MSGS, STOP))
    message = str(info.value)
    assert "\n" not in message and "after 3 attempts" in message
    assert "AttributeError" not in message and "validation error" not in message.lower()
    expected = {"shape": "malformed reply (", "no_choices": "malformed reply (no choices",
                "truncated": "connection error: ClientPayloadError"}[fault]  # fmt: skip
    assert expected in message


def test_lone_surrogate_in_content_reaches_the_caller_unharmed() -> None:
    with FakeOpenAIServer(fail_rate=0.0, script=["surrogate"]) as srv:
        out = asyncio.run(fast(srv.base_url, model="m").complete(MSGS, STOP))
    assert out.text.startswith("\ud800<answer>")  # the loop's text boundary replaces it


def test_dead_endpoint_is_unreachable_not_a_generic_failure() -> None:
    url = f"http://127.0.0.1:{dead_port()}/v1"
    for model in (None, "named"):
        llm = fast(url, model=model, max_retries=2)
        start = time.perf_counter()
        with pytest.raises(EndpointUnreachable, match="cannot connect") as info:
            asyncio.run(llm.prepare())
        assert time.perf_counter() - start < 5
        assert "\n" not in str(info.value) and "after 3 attempts" in str(info.value)


class _Models(BaseHTTPRequestHandler):
    """/v1/models answers 503 and counts; chat would answer but is never reached."""

    lookups = 0

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).lookups += 1
        data = b'{"error": "warming up"}'
        self.send_response(503)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_model_lookup_happens_once_per_client_even_when_it_fails() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        llm = fast(f"http://127.0.0.1:{httpd.server_address[1]}/v1", max_retries=1)

        async def many() -> list[BaseException | object]:
            with pytest.raises(LLMError, match="HTTP 503"):
                await llm.prepare()
            return await asyncio.gather(
                *(llm.complete(MSGS, STOP) for _ in range(10)), return_exceptions=True
            )

        results = asyncio.run(many())
        assert all(isinstance(r, LLMError) and "HTTP 503" in str(r) for r in results)
        assert _Models.lookups == 2  # one lookup (first try + 1 retry), not one per request
        llm.describe()  # no blocking second lookup either
        assert _Models.lookups == 2
    finally:
        httpd.shutdown()


def test_prepare_looks_the_model_up_once_for_a_whole_run() -> None:
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast(srv.base_url)

        async def run() -> None:
            await llm.prepare()
            await asyncio.gather(*(llm.complete(MSGS, STOP) for _ in range(8)))
            await llm.prepare()
            await llm.aclose()

        asyncio.run(run())
        assert srv.model_lookups == 1 and llm.model == "fake-model"


class _Echo(BaseHTTPRequestHandler):
    """Echoes the Authorization header in a 400 body, ``pad`` characters into the message."""

    pad = 0

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        message = "x" * self.pad + self.headers.get("Authorization", "") + " was refused"
        data = json.dumps({"error": {"message": message}}).encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.parametrize("key_at", [100, 285, 295, 299, 300, 301, 310])
def test_echoed_key_is_masked_before_the_excerpt_is_cut(monkeypatch, key_at: int) -> None:
    key = f"sk-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SP_ECHO_KEY", key)
    # the excerpt is the JSON body: '{"error": {"message": "' (23 chars) + pad + 'Bearer ' + key
    _Echo.pad = key_at - 23 - len("Bearer ")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        llm = fast(f"http://127.0.0.1:{httpd.server_address[1]}/v1", model="m",
                   api_key_env="SP_ECHO_KEY")  # fmt: skip
        with pytest.raises(LLMError) as info:
            asyncio.run(llm.complete(MSGS, STOP))
    finally:
        httpd.shutdown()
    message = str(info.value)
    assert "HTTP 400" in message
    leaked = [piece for piece in key_pieces(key) if piece in message]
    assert not leaked, (key_at, leaked, message)
    if key_at < 290:
        assert "Bearer ***" in message  # masked, not merely cut away
