"""OpenAIPool against real fake-OpenAI servers on 127.0.0.1: dispatch, failover, cooldown."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from searchprime.errors import LLMError
from searchprime.llm.base import SamplingParams
from searchprime.llm.openai_http import EndpointUnreachable, OpenAIChat
from searchprime.llm.pool import OpenAIPool
from searchprime.llm.registry import LLMConfig, load_llm
from searchprime.records import Message
from tests.llm.fake_openai import FakeOpenAIServer

MSGS = [Message(role="user", content="capital of France?")]
PARAMS = SamplingParams(max_tokens=16, temperature=0.0)
FAST = {"max_retries": 0, "backoff_base_s": 0.0, "timeout_s": 5.0}


def _slow(delay: float):
    def respond(body: dict[str, Any]) -> str:
        time.sleep(delay)
        return "<answer>Paris</answer>"

    return respond


def _dead_url() -> str:
    """A URL nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _run(pool: OpenAIPool, coro_fn) -> Any:
    async def main() -> Any:
        try:
            return await coro_fn()
        finally:
            await pool.aclose()

    return asyncio.run(main())


def test_ties_go_round_robin_and_load_goes_to_the_less_busy_server() -> None:
    with (
        FakeOpenAIServer(_slow(0.3), fail_rate=0) as slow,
        FakeOpenAIServer(_slow(0.01), fail_rate=0) as fast,
    ):
        pool = OpenAIPool([slow.base_url, fast.base_url], "m", **FAST)

        async def go() -> list[str]:
            servers = [(await pool.complete(MSGS, PARAMS)).meta["server"] for _ in range(4)]
            await asyncio.gather(*(pool.complete(MSGS, PARAMS) for _ in range(3)))
            return servers

        sequential = _run(pool, go)
        # one at a time: nothing in flight anywhere, so the servers take turns
        assert sequential == [slow.base_url, fast.base_url] * 2
        # three at once: the least-loaded pick spreads them 2/1, never 3 on one server
        assert (slow.calls, fast.calls) in {(4, 3), (3, 4)}

        pool = OpenAIPool([slow.base_url, fast.base_url], "m", **FAST)

        async def burst() -> None:
            # 30 requests, at most 4 in flight: the slow server keeps its requests longer
            sem = asyncio.Semaphore(4)

            async def one() -> None:
                async with sem:
                    await pool.complete(MSGS, PARAMS)

            await asyncio.gather(*(one() for _ in range(30)))

        before = slow.calls
        _run(pool, burst)
        assert slow.calls - before < 10 and fast.calls > 20


def test_a_failed_server_is_taken_out_its_request_retried_and_it_comes_back() -> None:
    with (
        FakeOpenAIServer(fail_rate=0, script=["500", "500"]) as flaky,
        FakeOpenAIServer(fail_rate=0) as good,
    ):
        bad_url, good_url = flaky.base_url, good.base_url
        pool = OpenAIPool([bad_url, good_url], "m", cooldown_s=0.3, **FAST)

        async def go() -> tuple[list[str], list[dict[str, Any]], list[str]]:
            first = [(await pool.complete(MSGS, PARAMS)).meta["server"] for _ in range(4)]
            state = pool.servers()
            await asyncio.sleep(0.35)  # the cooldown passes: the next request probes flaky
            probe = (await pool.complete(MSGS, PARAMS)).meta["server"]  # 500 again: out
            await asyncio.sleep(0.65)  # the second cooldown is twice as long
            later = [(await pool.complete(MSGS, PARAMS)).meta["server"] for _ in range(2)]
            return first, state, [probe, *later]

        first, state, later = _run(pool, go)
    # the first request hit flaky's 500, was answered by good; flaky then stayed out
    assert first == [good_url] * 4
    assert state[0]["taken_out"] == 1 and state[0]["out"] and "HTTP 500" in state[0]["last_error"]
    assert later[0] == good_url  # the probe failed (scripted 500) and failed over
    assert later[1:] == [bad_url, good_url]  # back in: turns again
    assert pool.servers()[0]["taken_out"] == 2 and flaky.ok == 1


def test_the_requests_own_fault_is_raised_and_the_server_stays_in() -> None:
    with FakeOpenAIServer(fail_rate=0, require_key="k") as locked, FakeOpenAIServer(fail_rate=0):
        pool = OpenAIPool([locked.base_url, _dead_url()], "m", **FAST)
        with pytest.raises(LLMError, match="HTTP 401") as info:
            _run(pool, lambda: pool.complete(MSGS, PARAMS))
        assert "no policy server left" not in str(info.value)
        assert pool.servers()[0]["taken_out"] == 0 and locked.calls == 1


def test_all_servers_out_is_an_llm_error_naming_each() -> None:
    dead = [_dead_url(), _dead_url()]
    pool = OpenAIPool(dead, "m", cooldown_s=60, **FAST)

    async def go() -> tuple[str, str]:
        with pytest.raises(LLMError) as first:
            await pool.complete(MSGS, PARAMS)
        with pytest.raises(LLMError) as second:  # both resting now: refused at once
            await pool.complete(MSGS, PARAMS)
        return str(first.value), str(second.value)

    first, second = _run(pool, go)
    assert first.startswith("no policy server left (2)") and first.count("cannot connect") == 2
    assert f"{dead[0]} out for " in second and f"{dead[1]} out for " in second


def test_prepare_takes_a_dead_server_out_and_fails_when_none_is_ready() -> None:
    dead = _dead_url()
    with FakeOpenAIServer(fail_rate=0, model="tiny") as live:
        pool = OpenAIPool([dead, live.base_url], None, **FAST)

        async def go() -> str:
            await pool.prepare()
            return (await pool.complete(MSGS, PARAMS)).meta["server"]

        assert _run(pool, go) == live.base_url
        assert pool.model == "tiny" and pool.name == "openai:tiny"
        assert pool.servers()[0]["out"] and pool.servers()[1]["requests"] == 1
        with FakeOpenAIServer(fail_rate=0, model="other") as other:
            mixed = OpenAIPool([live.base_url, other.base_url], None, **FAST)
            with pytest.raises(LLMError, match="serve different models"):
                _run(mixed, mixed.prepare)
    both_dead = OpenAIPool([_dead_url(), _dead_url()], "m", **FAST)
    with pytest.raises(EndpointUnreachable, match="none of 2 servers is ready"):
        _run(both_dead, both_dead.prepare)


def test_config_list_makes_a_pool_and_one_url_a_plain_client() -> None:
    with FakeOpenAIServer(fail_rate=0) as a, FakeOpenAIServer(fail_rate=0) as b:
        pool = load_llm({"kind": "openai", "base_url": [a.base_url, b.base_url], "model": "m"})
        assert isinstance(pool, OpenAIPool)
        described = pool.describe()
        assert described["base_url"] == [a.base_url, b.base_url]
        assert described["kind"] == "openai" and described["cooldown_s"] == 5.0
        single = load_llm({"kind": "openai", "base_url": [a.base_url], "model": "m"})
        assert isinstance(single, OpenAIChat)
        asyncio.run(pool.aclose())
        asyncio.run(single.aclose())
    with pytest.raises(ValueError, match="lists a server twice"):
        LLMConfig(kind="openai", base_url=["http://h:1/v1", "http://h:1/v1"])
    with pytest.raises(ValueError, match="needs `base_url`"):
        LLMConfig(kind="openai", base_url=[])
