"""The search clients on the shared HTTP transport: its retry policy, Retry-After, masked
errors, and a blocking path that keeps its connection, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from searchprime._http import RetryPolicy
from searchprime.errors import SearchError
from searchprime.search.http_client import RetrieverClient
from searchprime.search.web import SerperConfig, SerperSearch

RESULT = {"result": [[{"document": {"id": "7", "contents": '"T"\nbody'}, "score": 1.5}]]}


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST from ``script`` (then 200 with RESULT); records the client ports.

    A script entry is ``(status, headers, body)``; a body of ``"ECHO"`` echoes the request's
    ``Authorization`` (or its ``X-API-KEY`` as ``apikey <key>``) back, ``pad`` characters into
    the message.
    """

    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be seen
    script: list[tuple[int, dict[str, str], str]] = []
    ports: list[int] = []
    calls = 0
    pad = 0

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        cls = type(self)
        cls.calls += 1
        cls.ports.append(self.client_address[1])
        status, headers, text = cls.script.pop(0) if cls.script else (200, {}, json.dumps(RESULT))
        if text == "ECHO":
            echoed = self.headers.get("Authorization") or f"apikey {self.headers['X-API-KEY']}"
            text = json.dumps({"detail": "x" * cls.pad + echoed + " refused"})
        data = text.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server() -> Iterator[str]:
    _Scripted.script, _Scripted.ports, _Scripted.calls = [], [], 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_retry_policy() -> None:
    policy = RetryPolicy(retries=3, backoff_base_s=0.5, backoff_max_s=3.0)
    rng = random.Random(0)
    for attempt in range(6):
        caps = min(3.0, 0.5 * 2**attempt)
        waits = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(0.0 <= w <= caps for w in waits) and max(waits) > 0.8 * caps
    assert policy.delay(0, 2.0, rng) == 2.0 and policy.delay(0, 60.0, rng) == 3.0
    assert [policy.retryable(s) for s in (404, 400, 425, 429, 501, 503)] == [
        False, False, True, True, True, True,
    ]  # fmt: skip


def test_retriever_waits_as_long_as_retry_after_says(server: str) -> None:
    _Scripted.script = [(503, {"Retry-After": "1"}, '{"detail": "busy"}')]
    client = RetrieverClient(server, retries=2, backoff_s=0.001)
    start = time.perf_counter()
    hits = client.search_sync(["q"], 1)
    waited = time.perf_counter() - start
    assert hits[0][0].doc_id == "7" and hits[0][0].score == 1.5
    assert _Scripted.calls == 2 and 0.95 <= waited < 3.0  # the backoff alone would be ~1 ms
    _Scripted.script = [(500, {}, '{"detail": "boom"}')] * 3
    with pytest.raises(SearchError) as info:
        client.search_sync(["q"], 1)
    assert str(info.value) == (
        f'retriever {server}/retrieve failed after 3 tries: HTTP 500: {{"detail": "boom"}}'
    )
    asyncio.run(client.aclose())


def new_secret() -> str:
    """A secret of letters that no other part of the messages holds, so any 4 of them found
    are a leak (masking alone catches pieces of 8 or more: only masking BEFORE the cut
    leaves no shorter head of the secret at the end of the excerpt)."""
    return "".join(random.choice("QZJKWVGY") for _ in range(40))


def key_pieces(key: str) -> list[str]:
    return [key[i : i + 4] for i in range(len(key) - 3)]


# the excerpt keeps 299 characters of '{"detail": "' + pad + 'Bearer ' + secret: with pad 100
# the secret is well inside it, with pad 275 its first 5 characters are the excerpt's last
@pytest.mark.parametrize("pad", [100, 275])
def test_echoed_token_and_api_key_are_masked_before_the_cut(
    server: str, monkeypatch: pytest.MonkeyPatch, pad: int
) -> None:
    _Scripted.pad = pad
    token, key = new_secret(), new_secret()
    monkeypatch.setenv("SP_RETRIEVER_TOKEN", token)
    monkeypatch.setenv("SP_SERPER_KEY", key)
    _Scripted.script = [(401, {}, "ECHO"), (403, {}, "ECHO")]
    with pytest.raises(SearchError) as retriever:
        RetrieverClient(server, token_env="SP_RETRIEVER_TOKEN", retries=0).search_sync(["q"], 1)
    cfg = SerperConfig(base_url=server, api_key_env="SP_SERPER_KEY", cache_path=None)
    with pytest.raises(SearchError) as serper:
        asyncio.run(SerperSearch(cfg).search(["q"], 1))
    assert _Scripted.calls == 2  # a 4xx is not retried
    for message, secret in ((str(retriever.value), token), (str(serper.value), key)):
        assert "HTTP 40" in message and "\n" not in message
        assert not [p for p in key_pieces(secret) if p in message], message
    if pad == 100:
        assert "Bearer ***" in str(retriever.value)  # masked, not merely cut away


def test_blocking_search_keeps_its_connection_inside_and_outside_a_loop(server: str) -> None:
    client = RetrieverClient(server, retries=0)
    assert client.search_sync(["a"], 1)[0][0].doc_id == "7"

    async def inside() -> str:
        return client.search_sync(["b"], 1)[0][0].doc_id  # blocking, inside a running loop

    assert asyncio.run(inside()) == "7"
    assert client.search_sync(["c"], 1)[0][0].title == "T"
    assert _Scripted.calls == 3 and len(set(_Scripted.ports)) == 1  # one kept-alive connection
    thread = client._bridge._thread
    asyncio.run(client.aclose())
    assert client._bridge is None and not thread.is_alive()
