"""Retrieval: corpus readers, BM25 and dense indexes, the Search-R1 server and client, web search.

Light names are imported eagerly; index, server and web classes load on first access (they
pull numba, FAISS, FastAPI or torch), so ``import searchprime.search`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from searchprime.search.base import SearchBackend
from searchprime.search.corpus import CorpusDoc, read_corpus
from searchprime.search.format import NO_RESULTS, format_hits, parse_hits

# name -> module that defines it (the single list of lazily exported names)
_LAZY = {
    "BM25Config": "searchprime.search.bm25",
    "BM25Search": "searchprime.search.bm25",
    "build_bm25_index": "searchprime.search.bm25",
    "DenseConfig": "searchprime.search.dense",
    "DenseSearch": "searchprime.search.dense",
    "build_dense_index": "searchprime.search.dense",
    "plan_dense": "searchprime.search.dense_plan",
    "create_app": "searchprime.search.server",
    "RetrieverClient": "searchprime.search.http_client",
    "SerperConfig": "searchprime.search.web",
    "SerperSearch": "searchprime.search.web",
    "PageReader": "searchprime.search.pages",
    "SearchConfig": "searchprime.search.registry",
    "load_search": "searchprime.search.registry",
    "register_search_backend": "searchprime.search.registry",
}

__all__ = [
    "NO_RESULTS",
    "CorpusDoc",
    "SearchBackend",
    "format_hits",
    "parse_hits",
    "read_corpus",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'searchprime.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
