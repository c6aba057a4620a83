"""Fixtures: one real llama.cpp server (SmolLM2 GGUF via xllamacpp) for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from searchprime.llm.models import smollm2_gguf_path


@pytest.fixture(scope="session")
def smollm2_gguf():
    pytest.importorskip("xllamacpp")
    try:
        return smollm2_gguf_path()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"SmolLM2 GGUF not available: {exc}")


@pytest.fixture(scope="session")
def gguf_server(smollm2_gguf) -> Iterator:
    from searchprime.llm.serve import GGUFServer

    with GGUFServer(smollm2_gguf, parallel=4, ctx_size=4096, threads=1) as server:
        yield server
