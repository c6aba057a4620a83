"""The Search-R1 retrieval server over a real BM25 index, queried over real HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import requests

from searchprime.errors import SearchError
from searchprime.search.bm25 import BM25Search
from searchprime.search.http_client import RetrieverClient
from searchprime.search.server import BackgroundServer, create_app


@pytest.fixture(scope="module")
def index(toy_index: Path) -> BM25Search:
    s = BM25Search.load(toy_index)
    yield s
    s.close()


@pytest.fixture(scope="module")
def server(index: BM25Search):
    with BackgroundServer(create_app(index)) as srv:
        yield srv


def _passages2string(retrieval_result: list) -> str:
    """Search-R1's own formatting of one query's results (generation.py)."""
    format_reference = ""
    for idx, doc_item in enumerate(retrieval_result):
        content = doc_item["document"]["contents"]
        title = content.split("\n")[0]
        text = "\n".join(content.split("\n")[1:])
        format_reference += f"Doc {idx + 1}(Title: {title}) {text}\n"
    return format_reference


def test_search_r1_client_request_unchanged(server: BackgroundServer) -> None:
    # written exactly as Search-R1's generation.py sends it
    query = "capital of France"
    payload = {"queries": [query], "topk": 3, "return_scores": True}
    result = requests.post(server.url + "/retrieve", json=payload).json()["result"]
    assert len(result) == 1 and len(result[0]) == 3
    first = result[0][0]
    assert first["document"]["id"] == "paris" and first["score"] > 0
    assert (
        first["document"]["contents"] == '"Paris"\nParis is the capital and largest city of France.'
    )
    assert first["document"]["url"] == "https://en.wikipedia.org/wiki/Paris"
    assert _passages2string(result[0]).startswith(
        'Doc 1(Title: "Paris") Paris is the capital and largest city of France.\n'
    )


def test_without_scores_items_are_documents(server: BackgroundServer) -> None:
    body = {"queries": ["river Lyon", "zzzz"], "topk": 2, "return_scores": False}
    r = httpx.post(server.url + "/retrieve", json=body)
    result = r.json()["result"]
    assert r.headers["content-type"] == "application/json"
    assert set(result[0][0]) >= {"id", "contents", "title", "text"}
    assert "score" not in result[0][0] and result[1] == []
    default = httpx.post(server.url + "/retrieve", json={"queries": ["capital"]}).json()
    assert len(default["result"][0]) == 3  # default topk
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_invalid_requests_are_422(server: BackgroundServer) -> None:
    assert httpx.post(server.url + "/retrieve", json={"topk": 3}).status_code == 422
    assert (
        httpx.post(server.url + "/retrieve", json={"queries": ["a"], "topk": 0}).status_code == 422
    )


def test_fifty_concurrent_clients(server: BackgroundServer, index: BM25Search) -> None:
    queries = ["capital of France", "cats", "river", "Alps mountain", "dogs pets"]
    expected = {q: [h.doc_id for h in index.search_sync([q], 3)[0]] for q in queries}

    def client(i: int) -> list[str]:
        q = queries[i % len(queries)]
        with requests.Session() as s:
            out = []
            for _ in range(4):
                body = {"queries": [q], "topk": 3, "return_scores": True}
                r = s.post(server.url + "/retrieve", json=body, timeout=30)
                r.raise_for_status()
                out.append([d["document"]["id"] for d in r.json()["result"][0]] == expected[q])
            return out

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(client, range(50)))
    assert all(all(r) for r in results) and len(results) == 50


def test_client_against_server(server: BackgroundServer, index: BM25Search) -> None:
    client = RetrieverClient(server.url, topk=3)

    async def main():
        many = await asyncio.gather(*(client.search([f"river {i}", "cats"], 2) for i in range(60)))
        await client.aclose()
        return many

    many = asyncio.run(main())
    local = index.search_sync(["river 0", "cats"], 2)
    assert [[h.doc_id for h in row] for row in many[0]] == [[h.doc_id for h in r] for r in local]
    hit = many[0][1][0]
    assert hit.title == "Cats" and hit.score == pytest.approx(local[1][0].score)
    sync = client.search_sync(["capital of France"], 1)
    assert sync[0][0].source == "encyclopedia" and client.describe()["kind"] == "http"


def test_bearer_token(index: BM25Search, monkeypatch: pytest.MonkeyPatch) -> None:
    with BackgroundServer(create_app(index, token="s3cret")) as srv:
        body = {"queries": ["cats"], "topk": 1}
        assert httpx.post(srv.url + "/retrieve", json=body).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert httpx.post(srv.url + "/retrieve", json=body, headers=bad).status_code == 401
        assert "describe" not in httpx.get(srv.url + "/health").json()
        monkeypatch.setenv("SP_TEST_TOKEN", "s3cret")
        client = RetrieverClient(srv.url, token_env="SP_TEST_TOKEN", retries=0)
        assert client.search_sync(["cats"], 1)[0][0].doc_id == "cats"
        with pytest.raises(SearchError, match="401"):
            RetrieverClient(srv.url, retries=0).search_sync(["cats"], 1)


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 twice, then a Search-R1 response without scores (bare documents)."""

    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with _Flaky.lock:
            _Flaky.calls += 1
            n = _Flaky.calls
        if n <= 2:
            self.send_response(503)
            self.end_headers()
            return
        docs = [[{"id": "7", "contents": '"T"\nbody'}] for _ in body["queries"]]
        data = json.dumps({"result": docs}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def test_client_retries_then_parses_bare_documents() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        client = RetrieverClient(url, retries=3, backoff_s=0.01)
        hits = asyncio.run(client.search(["q1", "q2"], 3))
        assert _Flaky.calls == 3
        assert [(h.doc_id, h.title, h.text, h.score) for h in hits[1]] == [("7", "T", "body", None)]
        _Flaky.calls = -100  # always 503 now
        with pytest.raises(SearchError, match="failed after 2 tries"):
            RetrieverClient(url, retries=1, backoff_s=0.01).search_sync(["q"], 3)
    finally:
        srv.shutdown()
    with pytest.raises(SearchError):  # nothing listens there any more
        RetrieverClient(url, retries=0, timeout=2).search_sync(["q"], 3)
