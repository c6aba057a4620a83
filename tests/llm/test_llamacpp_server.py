"""OpenAIChat and GGUFServer against a real llama.cpp server running SmolLM2-135M (GGUF)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from searchprime.errors import ConfigError
from searchprime.llm.base import SamplingParams
from searchprime.llm.openai_http import OpenAIChat
from searchprime.records import Message

GREEDY = SamplingParams(max_tokens=24, temperature=0.0, seed=0)


def test_server_health_and_base_url(gguf_server):
    assert gguf_server.base_url.endswith("/v1")
    assert gguf_server.base_url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{gguf_server.root_url}/health").json()["status"] == "ok"
    assert gguf_server.describe()["parallel"] == 4


def test_completion_model_discovery_and_usage(gguf_server):
    llm = OpenAIChat(gguf_server.base_url)

    async def go():
        msgs = [Message(role="user", content="Say hello in one short sentence.")]
        out = await llm.complete(msgs, GREEDY)
        again = await llm.complete(msgs, GREEDY)
        await llm.aclose()
        return out, again

    out, again = asyncio.run(go())
    assert llm.model and llm.model.endswith(".gguf")
    assert out.text.strip() and out.text == again.text  # greedy is deterministic
    assert out.completion_tokens and 0 < out.completion_tokens <= 24
    assert out.prompt_tokens and out.prompt_tokens > 5
    assert out.finish_reason in {"stop", "length"}


def test_stop_sequence_is_restored(gguf_server):
    """Prefill-free check: the model is asked to repeat a tagged string; the server cuts at the
    stop and the client puts the closing tag back."""
    llm = OpenAIChat(gguf_server.base_url)
    msgs = [
        Message(role="system", content="Repeat the user's text exactly."),
        Message(role="user", content="<search>capital of France</search> done"),
    ]
    params = SamplingParams(max_tokens=30, temperature=0.0, stop=["</search>", "</answer>"])
    reply = httpx.post(
        f"{gguf_server.base_url}/chat/completions",
        json={"messages": [m.model_dump() for m in msgs], "max_tokens": 30, "temperature": 0},
        timeout=60,
    ).json()
    raw = reply["choices"][0]["message"]["content"]
    out = asyncio.run(llm.complete(msgs, params))
    head, tag, tail = raw.partition("</search>")
    if not tag or not tail.strip():
        pytest.skip(f"model did not repeat the tag and go on this time: {raw!r}")
    # the server stopped generating at the tag (the client sent the stop; greedy, so the
    # unstopped reply is the same tokens, only longer) ...
    assert out.completion_tokens < reply["usage"]["completion_tokens"]
    # ... and the client put back the tag the server cut
    assert out.text == head + "</search>"
    assert out.finish_reason == "stop"


def test_count_tokens_uses_llamacpp_tokenizer(gguf_server):
    llm = OpenAIChat(gguf_server.base_url)
    msgs = [Message(role="user", content="hello world")]
    n = llm.count_tokens(msgs)
    assert llm.describe()["token_counting"] == "server POST /apply-template + /tokenize"
    # The same prompt's usage.prompt_tokens from a real completion agrees exactly.
    out = asyncio.run(llm.complete(msgs, SamplingParams(max_tokens=1, temperature=0.0)))
    assert n == out.prompt_tokens
    longer = msgs + [Message(role="assistant", content="hi"), Message(role="user", content="more")]
    assert llm.count_tokens(longer) > n
    # the non-blocking path the agent loop uses picks the same server mode and agrees
    fresh = OpenAIChat(gguf_server.base_url)

    async def acount():
        counts = [await fresh.acount_tokens(msgs), await fresh.acount_tokens(longer)]
        await fresh.aclose()
        return counts

    assert asyncio.run(acount()) == [n, llm.count_tokens(longer)]
    assert fresh.describe()["token_counting"] == "server POST /apply-template + /tokenize"


def test_parallel_requests(gguf_server):
    llm = OpenAIChat(gguf_server.base_url, concurrency=4)
    params = SamplingParams(max_tokens=8, temperature=0.0)

    async def go():
        outs = await asyncio.gather(
            *(
                llm.complete([Message(role="user", content=f"Count to {i}.")], params)
                for i in (3, 4, 5, 6)
            )
        )
        await llm.aclose()
        return outs

    outs = asyncio.run(go())
    assert all(o.completion_tokens and o.completion_tokens <= 8 for o in outs)


def test_server_rejects_missing_file(tmp_path):
    from searchprime.llm.serve import GGUFServer

    with pytest.raises(ConfigError, match="not found"):
        GGUFServer(tmp_path / "nope.gguf")


@pytest.mark.slow  # loads the tokenizer from the GGUF (~5-20 s; shared with test_local_hf)
def test_count_tokens_with_local_gguf_tokenizer_agrees_with_server(gguf_server, smollm2_gguf):
    pytest.importorskip("transformers")
    msgs = [
        Message(role="system", content="You search."),
        Message(role="user", content="Question: who founded Nordvik Labs?"),
    ]
    local = OpenAIChat(gguf_server.base_url, tokenizer=smollm2_gguf)
    server = OpenAIChat(gguf_server.base_url)
    assert local.count_tokens(msgs) == server.count_tokens(msgs)
    assert local.describe()["token_counting"] == "local Hugging Face tokenizer"


def _blocked(tid: str) -> int:
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("SigBlk:")).split()[1], 16)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_stop_signals_reach_python_never_the_servers_threads(smollm2_gguf):
    """llama.cpp's threads block SIGINT / SIGTERM (they inherit the mask the constructor set),
    so a SIGTERM always reaches Python's handler; this thread's mask is restored."""
    import os
    import signal

    from searchprime.llm.serve import GGUFServer

    before = set(os.listdir("/proc/self/task"))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    caught = []
    previous = signal.signal(signal.SIGTERM, lambda *_: caught.append("python"))
    try:
        with GGUFServer(smollm2_gguf, parallel=1, ctx_size=512, threads=1) as server:
            started = set(os.listdir("/proc/self/task")) - before
            assert started, "the server started no thread"
            for tid in started:
                bits = _blocked(tid)
                for sig in (signal.SIGINT, signal.SIGTERM):
                    assert bits >> (sig - 1) & 1, f"server thread {tid} takes signal {sig}"
            assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
            os.kill(os.getpid(), signal.SIGTERM)
            assert caught == ["python"]
            assert httpx.get(f"{server.root_url}/health", timeout=10).status_code == 200
    finally:
        signal.signal(signal.SIGTERM, previous)
