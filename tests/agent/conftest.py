"""Fixtures for the agent tests: a real BM25 index over a tiny corpus."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent.helpers import CORPUS, ScriptedLLM


@pytest.fixture(scope="session")
def bm25_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from searchprime.search.bm25 import BM25Config, build_bm25_index

    root = tmp_path_factory.mktemp("bm25")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in CORPUS), encoding="utf-8")
    return build_bm25_index(corpus, root / "index", BM25Config(workers=1))


@pytest.fixture
def bm25(bm25_index: Path):
    from searchprime.search.bm25 import BM25Search

    backend = BM25Search.load(bm25_index, threads=1)
    yield backend
    backend.close()


@pytest.fixture
def scripted() -> Callable[..., ScriptedLLM]:
    return ScriptedLLM
