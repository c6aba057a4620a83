"""The retrieval server against hostile clients: no open docs, capped request and response."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from searchprime.errors import ConfigError
from searchprime.search.bm25 import BM25Search
from searchprime.search.server import BackgroundServer, ServerLimits, create_app

AUTH = {"Authorization": "Bearer s3cret"}
LIMITS = ServerLimits(
    max_queries=8, max_topk=5, max_hits=20, max_response_bytes=2048, max_request_bytes=2048
)


@pytest.fixture(scope="module")
def index(toy_index: Path) -> BM25Search:
    return BM25Search.load(toy_index)


@pytest.fixture(scope="module")
def capped(index: BM25Search) -> Iterator[str]:
    with BackgroundServer(create_app(index, token="s3cret", limits=LIMITS)) as srv:
        yield srv.url


def _post(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(url + "/retrieve", json=body, headers=AUTH if headers is None else headers)


def _refused(r: httpx.Response, status: int, limit: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["limit"] == limit and body["max"] == getattr(LIMITS, limit)
    return body["detail"]


def test_docs_and_schema_are_not_served(capped: str) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert httpx.get(capped + path).status_code == 404
        assert httpx.get(capped + path, headers=AUTH).status_code == 404
    assert _post(capped, {"queries": ["cats"]}, headers={}).status_code == 401
    assert httpx.get(capped + "/health").json()["status"] == "ok"


def test_caps_answer_413_or_422_with_a_json_body(capped: str) -> None:
    ok = _post(capped, {"queries": ["cats", "river"], "topk": 2, "return_scores": True})
    assert ok.status_code == 200 and [len(r) for r in ok.json()["result"]] == [2, 2]
    assert ok.json()["result"][0][0]["document"]["id"] == "cats"

    detail = _refused(_post(capped, {"queries": ["q"] * 9, "topk": 1}), 413, "max_queries")
    assert "9 queries" in detail and "split the batch" in detail
    _refused(_post(capped, {"queries": ["q"], "topk": 6}), 422, "max_topk")
    _refused(_post(capped, {"queries": ["q"] * 5, "topk": 5}), 413, "max_hits")
    # within the count caps, but the documents pass 2 KiB of JSON
    many = ["capital city river", "cats dogs pets", "mountain Alps", "river flows"] * 2
    big = _post(capped, {"queries": many, "topk": 2, "return_scores": True})
    _refused(big, 413, "max_response_bytes")
    # a body over 2 KiB, declared or streamed without a length (chunked)
    _refused(_post(capped, {"queries": ["x" * 3000]}), 413, "max_request_bytes")
    blob = json.dumps({"queries": ["y" * 3000]}).encode()
    chunks = (blob[i : i + 500] for i in range(0, len(blob), 500))
    r = httpx.post(capped + "/retrieve", content=chunks, headers=AUTH)
    _refused(r, 413, "max_request_bytes")
    assert _post(capped, {"queries": ["q"], "topk": 0}).status_code == 422  # still validated


def test_default_caps_refuse_the_581_mb_request_at_once(index: BM25Search) -> None:
    with BackgroundServer(create_app(index)) as srv:
        queries = [f"capital river {i}" for i in range(4096)]
        start = time.monotonic()
        r = httpx.post(srv.url + "/retrieve", json={"queries": queries, "topk": 1000})
        assert r.status_code == 422 and r.json()["limit"] == "max_topk"
        r = httpx.post(srv.url + "/retrieve", json={"queries": queries, "topk": 100})
        assert r.status_code == 413 and r.json()["limit"] == "max_hits"
        assert time.monotonic() - start < 5  # refused before any search runs
        r = httpx.post(srv.url + "/retrieve", json={"queries": queries[:100], "topk": 3})
        assert r.status_code == 200 and len(r.json()["result"]) == 100


def test_default_topk_must_fit_the_cap(index: BM25Search) -> None:
    with pytest.raises(ConfigError, match="max_topk"):
        create_app(index, default_topk=10, limits=ServerLimits(max_topk=5))
    with pytest.raises(ValueError):
        ServerLimits(max_queries=0)
