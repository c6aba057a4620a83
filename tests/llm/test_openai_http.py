"""OpenAIChat against a real fault-injecting HTTP server on 127.0.0.1 (tests/llm/fake_openai.py)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http.server
import json
import threading
import time

import pytest

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import SamplingParams
from searchprime.llm.openai_http import OpenAIChat, parse_retry_after
from searchprime.records import Message
from tests.llm.fake_openai import FakeOpenAIServer

MSGS = [Message(role="user", content="Question: where is the Eiffel tower?")]
STOP = SamplingParams(max_tokens=32, temperature=0.0, stop=["</search>", "</answer>"])


def fast_client(url: str, **kwargs) -> OpenAIChat:
    kwargs.setdefault("backoff_base_s", 0.01)
    kwargs.setdefault("backoff_max_s", 0.05)
    kwargs.setdefault("timeout_s", 5.0)
    return OpenAIChat(url, **kwargs)


def run(coro):
    return asyncio.run(coro)


def test_completion_restores_stop_and_reads_reasoning():
    def responder(body):
        return {
            "content": "I will look. <search>eiffel tower city</search> extra",
            "reasoning_content": "think",
        }

    with FakeOpenAIServer(responder, fail_rate=0.0) as srv:
        llm = fast_client(srv.base_url)

        async def go():
            out = await llm.complete(MSGS, STOP)
            await llm.aclose()
            return out

        out = run(go())
    assert out.text == "I will look. <search>eiffel tower city</search>"
    assert out.reasoning == "think"
    assert out.finish_reason == "stop"
    assert out.prompt_tokens and out.completion_tokens
    assert llm.model == "fake-model"  # discovered from /v1/models
    body = srv.requests[0]
    assert body["stop"] == ["</search>", "</answer>"] and body["temperature"] == 0.0
    assert body["model"] == "fake-model"


def test_reasoning_field_variant_and_extra_body():
    with FakeOpenAIServer(
        lambda b: {"content": "<answer>x</answer>", "reasoning": "r"}, 0.0
    ) as srv:
        llm = fast_client(srv.base_url, model="m1", extra_body={"chat_template_kwargs": {"a": 1}})
        out = run(llm.complete(MSGS, SamplingParams(max_tokens=8, seed=3)))
    assert out.reasoning == "r" and out.text == "<answer>x</answer>"
    assert srv.requests[0]["chat_template_kwargs"] == {"a": 1}
    assert srv.requests[0]["seed"] == 3 and srv.requests[0]["model"] == "m1"


def test_retries_every_fault_kind_then_succeeds():
    script = ["500", "503", "429", "drop", "garbage", "stall"]
    with FakeOpenAIServer(fail_rate=0.0, script=script, stall_s=1.0) as srv:
        llm = fast_client(srv.base_url, model="m", timeout_s=0.3, max_retries=6)
        out = run(llm.complete(MSGS, STOP))
    assert out.text.startswith("<answer>")
    assert srv.calls == 7 and srv.ok == 1
    assert out.meta == {"retries": 6}
    assert llm.stats["retries"] == 6


def test_gives_up_with_status_and_excerpt():
    with FakeOpenAIServer(fail_rate=1.0, faults=["500"]) as srv:
        llm = fast_client(srv.base_url, model="m", max_retries=2)
        with pytest.raises(LLMError) as info:
            run(llm.complete(MSGS, STOP))
    assert srv.calls == 3
    message = str(info.value)
    assert "HTTP 500" in message and "injected internal error" in message
    assert "after 3 attempts" in message


def test_client_error_is_not_retried():
    with FakeOpenAIServer(fail_rate=0.0, require_key="right") as srv:
        llm = fast_client(srv.base_url, model="m")
        with pytest.raises(LLMError, match="HTTP 401"):
            run(llm.complete(MSGS, STOP))
    assert srv.calls == 1


def test_retry_after_seconds_is_honoured():
    with FakeOpenAIServer(fail_rate=0.0, script=["429"], retry_after="1") as srv:
        llm = fast_client(srv.base_url, model="m", backoff_max_s=5.0)
        start = time.perf_counter()
        run(llm.complete(MSGS, STOP))
        waited = time.perf_counter() - start
    assert srv.calls == 2
    assert 0.95 <= waited < 3.0


def test_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    date = email.utils.formatdate(time.time() + 2, usegmt=True)
    with FakeOpenAIServer(fail_rate=0.0, script=["503"], retry_after=date) as srv:
        llm = fast_client(srv.base_url, model="m", backoff_max_s=5.0)
        start = time.perf_counter()
        run(llm.complete(MSGS, STOP))
        waited = time.perf_counter() - start
    assert srv.calls == 2 and 0.5 <= waited < 3.5  # HTTP dates have 1 s resolution


def test_timeout_is_per_request():
    with FakeOpenAIServer(fail_rate=1.0, faults=["stall"], stall_s=2.0) as srv:
        llm = fast_client(srv.base_url, model="m", timeout_s=0.2, max_retries=1)
        start = time.perf_counter()
        with pytest.raises(LLMError, match="timed out after 0.2 s"):
            run(llm.complete(MSGS, STOP))
        assert time.perf_counter() - start < 1.5


def test_api_key_sent_but_never_shown(monkeypatch):
    secret = "sk-test-SECRET-123456"
    monkeypatch.setenv("SP_TEST_KEY", secret)
    with FakeOpenAIServer(lambda b: f"echo {secret}", fail_rate=1.0, faults=["500"]) as srv:
        srv.require_key = secret
        llm = fast_client(srv.base_url, api_key_env="SP_TEST_KEY", max_retries=1)
        with pytest.raises(LLMError) as info:
            run(llm.complete(MSGS, STOP))
        assert srv.auth_headers == [f"Bearer {secret}"] * 2
        srv.fail_rate = 0.0
        out = run(llm.complete(MSGS, STOP))
    assert out.text == f"echo {secret}"  # the content is the server's business
    for shown in (str(info.value), repr(llm), str(llm.describe()), llm.name):
        assert secret not in shown
    assert llm.describe()["api_key_env"] == "SP_TEST_KEY"
    assert all(secret not in str(v) for v in vars(llm).values())


@contextlib.contextmanager
def _key_echoing_server():
    """A server that answers 401 and echoes the Authorization header it got, as some do."""

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"error": {"message": f"bad {self.headers['Authorization']}"}})
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_error_excerpt_scrubs_echoed_key(monkeypatch):
    secret = "sk-echoed-ABCDEF"
    monkeypatch.setenv("SP_TEST_KEY2", secret)
    with _key_echoing_server() as url:
        llm = fast_client(url, model="m", api_key_env="SP_TEST_KEY2")
        with pytest.raises(LLMError) as info:
            run(llm.complete(MSGS, STOP))
    message = str(info.value)
    assert "HTTP 401" in message and "bad Bearer ***" in message  # the echo, masked
    assert secret not in message and secret[:8] not in message
    assert llm._scrub(f"bad key {secret}") == "bad key ***"


def test_missing_key_env_is_a_config_error(monkeypatch):
    monkeypatch.delenv("SP_NOPE", raising=False)
    with pytest.raises(ConfigError, match="SP_NOPE"):
        OpenAIChat("http://127.0.0.1:1/v1", api_key_env="SP_NOPE")
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIChat("localhost:8000")


def test_concurrency_limit_and_fault_rollout():
    """Many concurrent requests through 30% faults: all succeed, never > concurrency at once."""
    active = 0
    peak = 0
    lock = __import__("threading").Lock()

    def responder(body):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return "<answer>" + body["messages"][-1]["content"] + "</answer>"

    with FakeOpenAIServer(responder, fail_rate=0.3, seed=1, faults=["500", "429", "drop"]) as srv:
        llm = fast_client(srv.base_url, model="m", concurrency=4, max_retries=8)

        async def go():
            msgs = [[Message(role="user", content=f"q{i}")] for i in range(40)]
            outs = await asyncio.gather(*(llm.complete(m, STOP) for m in msgs))
            await llm.aclose()
            return outs

        outs = run(go())
    assert [o.text for o in outs] == [f"<answer>q{i}</answer>" for i in range(40)]
    assert sum(srv.faults_injected.values()) > 0
    assert srv.calls == 40 + sum(srv.faults_injected.values())
    assert peak <= 4


def test_client_survives_a_new_event_loop():
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast_client(srv.base_url)
        first = run(llm.complete(MSGS, STOP))
        second = run(llm.complete(MSGS, STOP))
        run(llm.aclose())
    assert first.text == second.text


def test_count_tokens_server_then_cache_then_estimate():
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast_client(srv.base_url, model="m")
        n = llm.count_tokens(MSGS)
        assert n == len(MSGS[0].content) // 4
        assert llm.describe()["token_counting"].startswith("server POST /tokenize")
        assert llm.count_tokens(MSGS) == n
        longer = [*MSGS, Message(role="assistant", content="<search>eiffel tower</search>")]
        assert run(llm.acount_tokens(longer)) == llm.count_tokens(longer) > n
    with FakeOpenAIServer(fail_rate=0.0, tokenize=False) as srv:
        llm = fast_client(srv.base_url, model="m")
        # the documented estimate: ceil(chars / 4) + 4 per message, + 2 for the reply
        assert llm.count_tokens(MSGS) == 9 + 4 + 2  # 36 characters
        assert llm.count_tokens([Message(role="user", content="x" * 37)]) == 10 + 4 + 2
        assert "estimate" in llm.describe()["token_counting"]


def test_length_finish_does_not_invent_a_closing_tag():
    reply = {"content": "<search>an unfinished que", "finish_reason": "length"}
    with FakeOpenAIServer(lambda b: reply, fail_rate=0.0) as srv:
        out = run(fast_client(srv.base_url, model="m").complete(MSGS, STOP))
    assert out.finish_reason == "length" and out.text == "<search>an unfinished que"


def test_fake_server_faults_are_reproducible():
    """Same seed, same requests -> the same faults (the agent helper relies on this)."""

    def draw(seed):
        with FakeOpenAIServer(fail_rate=0.5, seed=seed, faults=["500", "429", "garbage"]) as srv:
            llm = fast_client(srv.base_url, model="m", max_retries=10)

            async def go():
                for i in range(12):
                    await llm.complete([Message(role="user", content=f"q{i}")], STOP)

            run(go())
            return srv.calls, dict(srv.faults_injected)

    first = draw(3)
    assert first == draw(3)
    assert first[0] > 12 and sum(first[1].values()) == first[0] - 12


def test_acount_tokens_uses_the_async_pool_not_a_blocking_client():
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast_client(srv.base_url)  # model unknown: /tokenize needs it from /v1/models

        async def go():
            msgs = [[Message(role="user", content="x" * (40 + 4 * i))] for i in range(12)]
            counts = await asyncio.gather(*(llm.acount_tokens(m) for m in msgs))
            again = await llm.acount_tokens(msgs[3])  # cached
            await llm.aclose()
            return counts, again

        counts, again = run(go())
        assert counts == [10 + i for i in range(12)] and again == 13
        assert llm._sync_client is None  # no blocking httpx call, no worker thread
        assert llm.model == "fake-model"
        assert llm.describe()["token_counting"].startswith("server POST /tokenize")
    with FakeOpenAIServer(fail_rate=0.0, tokenize=False) as srv:
        llm = fast_client(srv.base_url, model="m")
        assert run(llm.acount_tokens(MSGS)) == 9 + 4 + 2  # ceil(36 / 4) + 4 + 2, as above
        assert "estimate" in llm.describe()["token_counting"]


def test_pool_is_closed_when_asyncio_run_ends_without_aclose():
    """asyncio.run finalises the session (no 'Unclosed client session' at exit); the next
    asyncio.run gets a fresh pool."""
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast_client(srv.base_url, model="m")
        run(llm.complete(MSGS, STOP))
        first = llm._client
        assert first is not None and first.closed
        run(llm.complete(MSGS, STOP))
        assert llm._client is not first and llm._client.closed
        run(llm.aclose())
        assert llm._client is None


def test_environment_proxy_is_looked_up_once_like_httpx(monkeypatch):
    from searchprime._http import env_proxy as _env_proxy

    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.example:3128")
    proxy, auth = _env_proxy("http://api.example.com/v1")
    assert proxy == "http://proxy.example:3128" and auth is not None and auth.login == "user"
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert _env_proxy("http://api.example.com/v1") == (None, None)
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy", raising=False)
    assert _env_proxy("http://other.example.com/v1") == (None, None)


def test_tls_verification_uses_ssl_cert_file_or_certifi(monkeypatch):
    import ssl

    import certifi

    from searchprime._http import ssl_context as _ssl_context

    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    ctx = _ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 50  # certifi's bundle
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert _ssl_context().cert_store_stats()["x509_ca"] == ctx.cert_store_stats()["x509_ca"]
