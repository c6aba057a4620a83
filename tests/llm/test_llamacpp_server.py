"""OpenAIChat and GGUFServer against a real llama.cpp server running SmolLM2-135M (GGUF)."""

from __future__ import annotations

import asyncio
import time
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


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for a parent that never reaps it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads Linux's /proc")
def test_the_server_is_a_child_process_that_stops_with_close(smollm2_gguf):
    import os

    from searchprime.llm.serve import GGUFServer

    server = GGUFServer(smollm2_gguf, parallel=1, ctx_size=512, threads=1)
    pid = server.pid
    assert pid is not None and pid != os.getpid() and _alive(pid)
    assert httpx.get(f"{server.root_url}/health", timeout=10).status_code == 200
    server.close()
    assert server.pid is None and not _alive(pid)
    server.close()  # idempotent
    assert "closed" in repr(server)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.root_url}/health", timeout=2)


_CALLER = """
import sys
from searchprime.llm.serve import GGUFServer
print("starting", flush=True)
server = GGUFServer(sys.argv[1], parallel=1, ctx_size=512, threads=1)
print(server.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads Linux's /proc")
def test_a_killed_caller_leaves_no_server_behind(smollm2_gguf):
    """SIGKILL once serving: the server's stdin ends, so it exits too. SIGTERM while the
    server starts (a study stopped at a session's end) stops the caller at once: the
    constructor no longer holds it."""
    import signal
    import subprocess
    import sys

    def caller() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CALLER, str(smollm2_gguf)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "starting"
        return proc

    proc = caller()
    assert proc.stdout is not None
    server_pid = int(proc.stdout.readline())
    assert _alive(server_pid)
    proc.kill()
    proc.wait(timeout=10)
    assert _gone_within(server_pid, 15), "the server outlived its killed caller"

    proc = caller()
    deadline, kids = time.monotonic() + 15, []
    while not kids and time.monotonic() < deadline:  # the server process, as it starts
        kids = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _parent(int(p.name)) == proc.pid
        ]
    assert len(kids) == 1
    proc.send_signal(signal.SIGTERM)  # while the model loads
    assert proc.wait(timeout=15) == -signal.SIGTERM
    assert _gone_within(kids[0], 15), "the server outlived its terminated caller"


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def test_a_file_llama_cpp_cannot_load_fails_with_its_path(tmp_path):
    pytest.importorskip("xllamacpp")
    from searchprime.errors import LLMError
    from searchprime.llm.serve import GGUFServer

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(LLMError, match=r"broken\.gguf: llama\.cpp server failed to start: "):
        GGUFServer(bad, parallel=1, ctx_size=512, threads=1, startup_timeout_s=60)


@pytest.mark.parametrize(
    ("script", "said"),
    [
        # dies while starting (out of memory, a broken install): its exit code and last words
        (
            "echo 'ggml: failed to allocate 4.2 GiB' >&2; exit 3",
            r"exited with code 3; its log "
            r"ends: ggml: failed to allocate 4\.2 GiB",
        ),
        # answers something that is not the protocol's JSON line, and would go on running
        ("echo 'hello'; cat > /dev/null", r"unreadable answer b'hello\\n'"),
    ],
)
def test_a_server_process_that_fails_to_answer_is_an_error(tmp_path, monkeypatch, script, said):
    """The parent's side of the child protocol, against real processes that break it."""
    import sys

    pytest.importorskip("xllamacpp")
    from searchprime.errors import LLMError
    from searchprime.llm.serve import GGUFServer

    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(sys, "executable", str(fake))
    started = time.monotonic()
    with pytest.raises(LLMError, match=rf"m\.gguf: llama\.cpp server failed to start: .*{said}"):
        GGUFServer(model, parallel=1, ctx_size=512, startup_timeout_s=30)
    assert time.monotonic() - started < 10
