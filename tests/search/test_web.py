"""Serper adapter, cache and page reader against local HTTP servers speaking the real formats."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from searchprime.errors import ConfigError, SearchError
from searchprime.search.format import format_hits
from searchprime.search.pages import PageReader
from searchprime.search.web import SerperConfig, SerperSearch


def serper_response(q: str, num: int) -> dict:
    """The shape google.serper.dev/search returns (abridged values)."""
    organic = [
        {
            "title": "Apple Inc. - Wikipedia",
            "link": "https://en.wikipedia.org/wiki/Apple_Inc.",
            "snippet": f"Apple Inc. is an American multinational technology company ({q}).",
            "sitelinks": [{"title": "History", "link": "https://en.wikipedia.org/wiki/History"}],
            "attributes": {"Founded": "April 1, 1976"},
            "position": 1,
        },
        {
            "title": "Apple",
            "link": "https://www.apple.com/",
            "snippet": "Discover the innovative world of Apple and shop everything iPhone.",
            "position": 2,
        },
        {
            "title": "Apple forum thread",
            "link": "https://forums.example.net/t/apple",
            "snippet": "I heard Apple was founded in 1977?",
            "date": "Mar 3, 2021",
            "position": 3,
        },
    ][:num]
    return {
        "searchParameters": {"q": q, "type": "search", "num": num, "engine": "google"},
        "knowledgeGraph": {
            "title": "Apple",
            "type": "Technology company",
            "website": "http://www.apple.com/",
            "descriptionSource": "Wikipedia",
        },
        "organic": organic,
        "peopleAlsoAsk": [{"question": "Who owns Apple?", "snippet": "...", "link": "https://x.y"}],
        "relatedSearches": [{"query": "apple stock"}],
        "credits": 1,
    }


class _Serper(BaseHTTPRequestHandler):
    requests: list[dict] = []
    fail_next = 0

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Serper.requests.append({"path": self.path, "key": self.headers.get("X-API-KEY"), **body})
        if _Serper.fail_next > 0:
            _Serper.fail_next -= 1
            self.send_response(429)
            self.end_headers()
            return
        if self.headers.get("X-API-KEY") != "test-key":
            self.send_response(403)
            self.end_headers()
            return
        data = json.dumps(serper_response(body["q"], body.get("num", 10))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        html = (
            b"<html><head><title>Orvane Telmar</title></head><body><nav>menu</nav>"
            b"<article><h1>Orvane Telmar</h1><p>Orvane Telmar is a river port founded in 1642 "
            b"by traders from the north. It grew quickly along the estuary and became known "
            b"for its shipyards and its archive of maritime charts.</p><p>The archive holds "
            b"more than four thousand documents written over three centuries.</p></article>"
            b"</body></html>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(html)))
        self.end_headers()
        self.wfile.write(html)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.fixture()
def fake() -> str:
    _Serper.requests = []
    _Serper.fail_next = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Serper)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _cfg(url: str, tmp_path: Path, **kw) -> SerperConfig:
    return SerperConfig(base_url=url, cache_path=str(tmp_path / "web.sqlite"), **kw)


def test_serper_hits_and_cache(fake: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERPER_API_KEY", "test-key")
    web = SerperSearch(_cfg(fake, tmp_path, gl="us", rate_per_s=100))
    [hits] = asyncio.run(web.search(["apple founded"], 3))
    assert _Serper.requests == [
        {"path": "/search", "key": "test-key", "q": "apple founded", "num": 3, "gl": "us"}
    ]
    assert [h.url for h in hits][:2] == [
        "https://en.wikipedia.org/wiki/Apple_Inc.",
        "https://www.apple.com/",
    ]
    assert hits[2].meta == {"position": 3, "date": "Mar 3, 2021"}
    assert "Doc 1 (Title: Apple Inc. - Wikipedia) [Source: en.wikipedia.org]" in format_hits(hits)
    # a rerun (new backend, same cache file) costs no request; other settings do
    web2 = SerperSearch(_cfg(fake, tmp_path, gl="us", rate_per_s=100))
    again = asyncio.run(web2.search(["apple founded", "apple founded"], 3))
    assert again == [hits, hits] and len(_Serper.requests) == 1 and web2.cache_hits == 2
    asyncio.run(web2.search(["apple founded"], 2))
    asyncio.run(
        SerperSearch(_cfg(fake, tmp_path, gl="de", rate_per_s=100)).search(["apple founded"], 3)
    )
    assert len(_Serper.requests) == 3
    assert web.describe()["kind"] == "serper" and "test-key" not in json.dumps(web.describe())


def test_serper_retries_and_rate_limit(
    fake: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERPER_API_KEY", "test-key")
    _Serper.fail_next = 2
    web = SerperSearch(_cfg(fake, tmp_path, backoff_s=0.01, rate_per_s=1000))
    assert len(asyncio.run(web.search(["q"], 2))[0]) == 2 and web.requests == 3
    slow = SerperSearch(SerperConfig(base_url=fake, cache_path=None, rate_per_s=20))
    t = time.monotonic()
    out = asyncio.run(slow.search([f"q{i}" for i in range(6)], 1))
    assert time.monotonic() - t >= 5 / 20 * 0.9 and all(len(r) == 1 for r in out)
    _Serper.fail_next = 10
    with pytest.raises(SearchError, match="failed after 2 tries"):
        asyncio.run(SerperSearch(_cfg(fake, tmp_path, retries=1, backoff_s=0.01)).search(["x"], 1))


def test_serper_key_errors(fake: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SERPER_API_KEY"):
        asyncio.run(SerperSearch(_cfg(fake, tmp_path)).search(["q"], 1))
    monkeypatch.setenv("SERPER_API_KEY", "wrong")
    with pytest.raises(SearchError, match="403"):
        asyncio.run(SerperSearch(_cfg(fake, tmp_path)).search(["q"], 1))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://localhost/admin",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://0.0.0.0/",
        "file:///etc/passwd",
    ],
)
def test_page_reader_refuses_private_addresses(url: str) -> None:
    with pytest.raises(SearchError, match="refusing"):
        PageReader().read_sync(url)


def test_page_reader_extracts_text(fake: str) -> None:
    with pytest.raises(SearchError, match="127.0.0.1"):
        PageReader().read_sync(fake + "/page")
    page = PageReader(allow_private=True).read_sync(fake + "/page")
    assert page.title == "Orvane Telmar" and "founded in 1642" in page.text
    assert "menu" not in page.text and page.to_hit().url == fake + "/page"
