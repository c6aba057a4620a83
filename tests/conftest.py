"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def sigint_default() -> None:
    """``preexec_fn`` for children that must die on Ctrl-C: a runner started in the background
    (``nohup cmd &``) hands its children SIGINT *ignored*, and Python then installs no
    KeyboardInterrupt handler."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smol_llm() -> Iterator[object]:
    """The real SmolLM2-135M served by llama.cpp on 127.0.0.1, behind OpenAIChat (shared)."""
    import asyncio

    from searchprime.llm.models import smollm2_gguf_path
    from searchprime.llm.openai_http import OpenAIChat
    from searchprime.llm.serve import GGUFServer

    with GGUFServer(smollm2_gguf_path(), parallel=4, ctx_size=8192) as server:
        llm = OpenAIChat(server.base_url, "smollm2-135m", timeout_s=120.0, max_retries=1)
        yield llm
        asyncio.run(llm.aclose())


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a trainable Hugging Face folder (made once per session)."""
    from searchprime.train.models import prepare_smollm2

    return prepare_smollm2(tmp_path_factory.mktemp("smollm2") / "model")


class CountingLLM:
    """Wraps an LLM and counts the requests that reach it."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.model = getattr(inner, "model", None)
        self.calls = 0

    async def complete(self, messages, params):
        self.calls += 1
        return await self.inner.complete(messages, params)

    def count_tokens(self, messages):
        return self.inner.count_tokens(messages)

    def describe(self):
        return self.inner.describe()

    async def aclose(self):
        return None


@pytest.fixture
def counting():
    return CountingLLM
