"""Token counting is one code path: the blocking count runs the async one on a private loop."""

from __future__ import annotations

import asyncio

from searchprime.llm.base import SamplingParams
from searchprime.llm.openai_http import OpenAIChat
from searchprime.records import Message
from tests.llm.fake_openai import FakeOpenAIServer

SHORT = [Message(role="user", content="x" * 40)]  # the fake server counts chars // 4: 10
LONGER = [*SHORT, Message(role="assistant", content="y" * 20)]  # 60 chars: 15


def fast(url: str, **kwargs) -> OpenAIChat:
    return OpenAIChat(url, backoff_base_s=0.005, backoff_max_s=0.01, timeout_s=5.0, **kwargs)


def test_sync_and_async_counts_share_the_mode_the_cache_and_the_probe() -> None:
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast(srv.base_url, model="m")
        assert llm.count_tokens(SHORT) == 10
        assert srv.tokenize_calls == 1  # the probe that picked the mode gave the count too
        assert asyncio.run(llm.acount_tokens(SHORT)) == 10
        assert srv.tokenize_calls == 1  # the async path read the blocking path's cache
        assert asyncio.run(llm.acount_tokens(LONGER)) == 15
        assert srv.tokenize_calls == 2
        assert llm.count_tokens(LONGER) == 15 and srv.tokenize_calls == 2
        asyncio.run(llm.aclose())


def test_blocking_count_inside_a_running_loop_then_aclose_stops_its_thread() -> None:
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast(srv.base_url, model="m")

        async def agent() -> tuple[int, str]:
            n = llm.count_tokens(SHORT)  # a blocking caller inside async code
            out = await llm.complete(SHORT, SamplingParams(max_tokens=8))
            return n, out.text

        n, text = asyncio.run(agent())
        assert n == 10 and text
        bridge = llm._sync_client
        assert bridge is not None
        thread = bridge._thread
        assert thread is not None and thread.is_alive()
        asyncio.run(llm.aclose())
        assert llm._sync_client is None and not thread.is_alive()
        # a later blocking call starts a fresh private loop
        assert llm.count_tokens(LONGER) == 15
        asyncio.run(llm.aclose())


def test_describe_looks_the_model_up_once_through_the_private_loop() -> None:
    with FakeOpenAIServer(fail_rate=0.0) as srv:
        llm = fast(srv.base_url)

        async def inside() -> dict:
            return llm.describe()  # blocking, inside a running loop

        assert asyncio.run(inside())["model"] == "fake-model"
        llm.describe()
        assert srv.model_lookups == 1
        asyncio.run(llm.aclose())
