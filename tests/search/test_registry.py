"""SearchConfig / load_search and the package's lazy exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import searchprime.search as search_pkg
from searchprime.search import SearchBackend
from searchprime.search.registry import SearchConfig, load_search


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="needs `path`"):
        SearchConfig(kind="bm25")
    with pytest.raises(ValidationError, match="needs `url`"):
        SearchConfig(kind="http")
    with pytest.raises(ValidationError, match="extra"):
        SearchConfig(kind="bm25", path="x", colour="red")
    with pytest.raises(ValidationError):
        SearchConfig(kind="elastic", path="x")
    assert SearchConfig(kind="serper").topk == 3


def test_load_each_kind(toy_index: Path, tmp_path: Path) -> None:
    bm25 = load_search(SearchConfig(kind="bm25", path=str(toy_index), threads=1))
    http = load_search(SearchConfig(kind="http", url="http://127.0.0.1:9"))
    web = load_search(
        SearchConfig(kind="serper", serper={"cache_path": str(tmp_path / "c.sqlite")})
    )
    for backend, name in ((bm25, "bm25"), (http, "http"), (web, "serper")):
        assert isinstance(backend, SearchBackend) and backend.name == name
        assert backend.describe()["kind"] == name
    assert bm25.search_sync(["Danube"], 3)[0][0].doc_id == "danube"


def test_lazy_exports() -> None:
    assert set(search_pkg.__all__) >= {"BM25Search", "create_app", "load_search", "read_corpus"}
    from searchprime.search import bm25

    assert search_pkg.build_bm25_index is bm25.build_bm25_index  # resolved lazily from bm25
    with pytest.raises(AttributeError):
        search_pkg.nope  # noqa: B018
    code = (
        "import sys, searchprime.search as s; s.SearchConfig; "
        "print(sorted(m for m in ('numba', 'torch', 'faiss', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
