"""Web search through Serper (the API the Behavior Priming scaffold used) and a page reader.

:class:`SerperSearch` implements :class:`SearchBackend`: it POSTs ``{"q", "num", "gl"?, "hl"?}``
to ``{base_url}/search`` with the key from ``$SERPER_API_KEY`` (configurable) in
``X-API-KEY``, and turns the response's ``organic`` items (``title``, ``link``, ``snippet``,
``position``, ``date``?) into hits whose URL gives the agent a domain to weigh. Requests are
rate-limited (``rate_per_s``, every attempt), bounded in concurrency, retried by the shared
transport (:mod:`searchprime._http`: 408/409/425/429, 5xx, network errors, non-JSON replies;
full-jitter backoff, ``Retry-After`` honoured; the key masked in errors), and cached in SQLite
keyed by the query and every setting that changes the answer, so reruns and RL epochs cost
nothing.

:class:`PageReader` fetches a page for an open-page action and extracts its main text with
trafilatura. By default it refuses URLs whose host resolves to any address that is not
globally routable (:func:`is_public_ip`: loopback, private, shared 100.64.0.0/10 — where cloud
metadata services such as 100.100.100.200 live —, link-local 169.254.0.0/16, unique-local
fc00::/7, multicast, reserved, unspecified, and IPv6 forms that embed such an IPv4 address),
checked on every address the host resolves to, before connecting and on every redirect; this
stops a policy from probing the machine or its network. ``allow_private=True`` turns the check
off (tests reading from 127.0.0.1). Each fetch has a total deadline (``deadline_s``, besides the
per-read ``timeout_s``, so a server dripping bytes cannot hold it) and a byte cap
(``max_bytes``; a page cut there is returned with ``truncated=True``). (A host whose DNS answer
changes between the check and the connection is not covered; run untrusted policies behind an
egress proxy.)
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
from pydantic import BaseModel, ConfigDict, Field

from searchprime import secrets
from searchprime._http import HTTPFailure, RetryPolicy, Transport
from searchprime._lazy import require
from searchprime.errors import ConfigError, SearchError
from searchprime.records import SearchHit

__all__ = [
    "Page",
    "PageReader",
    "SQLiteCache",
    "SerperConfig",
    "SerperSearch",
    "is_public_ip",
    "organic_to_hits",
]

DEFAULT_CACHE = "~/.cache/searchprime/web.sqlite"


class SerperConfig(BaseModel):
    """Serper web search settings."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default="https://google.serper.dev", description="API root; tests point it at 127.0.0.1."
    )
    api_key_env: str = Field(default="SERPER_API_KEY", description="Env var holding the key.")
    gl: str | None = Field(default=None, description="Country code, e.g. 'us'.")
    hl: str | None = Field(default=None, description="Interface language, e.g. 'en'.")
    cache_path: str | None = Field(
        default=DEFAULT_CACHE, description="SQLite cache file; null disables the cache."
    )
    cache_ttl_s: float | None = Field(
        default=None, gt=0, description="Cache entries older than this are refetched."
    )
    rate_per_s: float = Field(default=5.0, gt=0, description="Max requests started per second.")
    concurrency: int = Field(default=8, ge=1, description="Max requests in flight.")
    retries: int = Field(default=3, ge=0, description="Retries on 429/5xx/network errors.")
    backoff_s: float = Field(
        default=1.0, ge=0, description="First retry waits up to this (doubles, full jitter)."
    )
    timeout_s: float = Field(default=20.0, gt=0, description="Per-request timeout.")


class SQLiteCache:
    """A tiny thread-safe key/value cache in one SQLite file (``key -> JSON``)."""

    def __init__(self, path: str | Path, table: str = "serper"):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not re.fullmatch(r"[a-z_]+", table):
            raise ValueError(f"bad table name {table!r}")
        self.table = table
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db.commit()

    def get(self, key: str, ttl_s: float | None = None) -> Any | None:
        """The cached value, or ``None`` when missing or older than ``ttl_s``."""
        with self._lock:
            row = self._db.execute(
                f"SELECT value, created FROM {self.table} WHERE key = ?", (key,)
            ).fetchone()
        if row is None or (ttl_s is not None and time.time() - row[1] > ttl_s):
            return None
        return json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serializable) under ``key``."""
        data = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO {self.table} (key, value, created) VALUES (?, ?, ?)",
                (key, data, time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class _RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart (per event loop)."""

    def __init__(self, rate_per_s: float):
        self.interval = 1.0 / rate_per_s
        self._next = 0.0
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._lock = loop, asyncio.Lock()
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def organic_to_hits(payload: dict[str, Any], topk: int) -> list[SearchHit]:
    """Serper's ``organic`` results as hits (URL as id; snippet as text)."""
    hits = []
    for item in payload.get("organic") or []:
        link = item.get("link")
        if not link:
            continue
        meta = {k: item[k] for k in ("position", "date") if k in item}
        hits.append(
            SearchHit(
                doc_id=link,
                title=str(item.get("title") or ""),
                text=str(item.get("snippet") or ""),
                url=link,
                meta=meta,
            )
        )
        if len(hits) >= topk:
            break
    return hits


class SerperSearch:
    """Google results through Serper; implements :class:`SearchBackend`."""

    name = "serper"

    def __init__(self, config: SerperConfig | None = None):
        self.config = cfg = config or SerperConfig()
        self.cache = SQLiteCache(cfg.cache_path) if cfg.cache_path else None
        self._limiter = _RateLimiter(cfg.rate_per_s)
        self._policy = RetryPolicy(retries=cfg.retries, backoff_base_s=cfg.backoff_s)
        self._transport = Transport(cfg.base_url, timeout_s=cfg.timeout_s)
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0
        self.cache_hits = 0

    def _body(self, query: str, topk: int) -> dict[str, Any]:
        body: dict[str, Any] = {"q": query, "num": topk}
        if self.config.gl:
            body["gl"] = self.config.gl
        if self.config.hl:
            body["hl"] = self.config.hl
        return body

    @staticmethod
    def cache_key(body: dict[str, Any]) -> str:
        """Key of a request: every field of the body (query, num, gl, hl) and the endpoint."""
        blob = json.dumps({"endpoint": "search", **body}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _state(self) -> tuple[Transport, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._sem is None:
            self._loop = loop
            self._sem = asyncio.Semaphore(self.config.concurrency)
        return self._transport, self._sem

    async def _attempt(self) -> None:
        await self._limiter.wait()
        self.requests += 1

    async def _fetch(self, body: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        key = secrets.register_env(cfg.api_key_env)  # masked in every text written or printed
        if not key:
            raise ConfigError(f"web search: set the environment variable {cfg.api_key_env}")
        transport, sem = self._state()
        url = cfg.base_url.rstrip("/") + "/search"
        async with sem:
            try:
                data, _ = await transport.request(
                    "POST",
                    url,
                    body,
                    policy=self._policy,
                    headers={"X-API-KEY": key},
                    before_attempt=self._attempt,
                )
            except HTTPFailure as exc:
                raise SearchError(exc.summary("serper", "tries")) from None
        if not isinstance(data, dict):
            raise SearchError("serper: response is not a JSON object")
        return data

    async def _one(self, query: str, topk: int) -> list[SearchHit]:
        body = self._body(query, topk)
        key = self.cache_key(body)
        if self.cache is not None:
            cached = await asyncio.to_thread(self.cache.get, key, self.config.cache_ttl_s)
            if cached is not None:
                self.cache_hits += 1
                return organic_to_hits(cached, topk)
        data = await self._fetch(body)
        if self.cache is not None:
            await asyncio.to_thread(self.cache.put, key, data)
        return organic_to_hits(data, topk)

    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """One Serper request per query (concurrently, rate-limited, cached)."""
        return list(await asyncio.gather(*(self._one(q, topk) for q in queries)))

    def describe(self) -> dict[str, Any]:
        """Settings to record (never the key)."""
        c = self.config
        return {
            "kind": "serper",
            "base_url": c.base_url,
            "gl": c.gl,
            "hl": c.hl,
            "cache": c.cache_path,
        }

    async def aclose(self) -> None:
        """Close the HTTP client and the cache."""
        await self._transport.aclose()
        if self.cache is not None:
            self.cache.close()
            self.cache = None


# ------------------------------------------------------------------------------ page reader


@dataclass
class Page:
    """The readable text of a web page."""

    url: str
    final_url: str
    title: str
    text: str
    truncated: bool = False

    def to_hit(self) -> SearchHit:
        """The page as a hit (for formatting with :func:`format_hits`)."""
        return SearchHit(
            doc_id=self.final_url, title=self.title, text=self.text, url=self.final_url
        )


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``ip`` is globally routable, so that a fetch cannot reach the local machine,
    its network or a cloud metadata service. IPv6 forms embedding an IPv4 address
    (IPv4-mapped, 6to4, NAT64) are judged by that address.

    >>> [is_public_ip(a) for a in ("93.184.215.14", "100.100.100.200", "::ffff:10.0.0.1")]
    [True, False, False]
    """
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_ip(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_ip(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None and not is_public_ip(ip.sixtofour):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class PageReader:
    """Fetch a URL and extract its main text (trafilatura), refusing non-global addresses.

    ``timeout_s`` bounds each connect and read, ``deadline_s`` the whole fetch (redirects
    included), ``max_bytes`` the body read (beyond it the page is cut and marked truncated),
    ``max_chars`` the extracted text. ``allow_private=True`` allows any address (tests).
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout_s: float = 20.0,
        deadline_s: float = 30.0,
        max_bytes: int = 3_000_000,
        max_chars: int = 20_000,
        max_redirects: int = 5,
        user_agent: str = "searchprime-page-reader/0.1",
    ):
        if timeout_s <= 0 or deadline_s <= 0 or max_bytes < 1 or max_chars < 1:
            raise ConfigError(
                "page reader: timeout_s, deadline_s, max_bytes, max_chars must be > 0"
            )
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.max_redirects = max_redirects
        self.headers = {"User-Agent": user_agent}

    async def check_url(self, url: str) -> None:
        """Raise :class:`SearchError` unless ``url`` is http(s) to a public address."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SearchError(f"open page: refusing {url!r}: only http(s) URLs with a host")
        if self.allow_private:
            return
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parsed.hostname, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise SearchError(f"open page: cannot resolve {parsed.hostname}: {exc}") from None
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            if not is_public_ip(ip):
                raise SearchError(
                    f"open page: refusing {url}: {parsed.hostname} resolves to {ip}, not a "
                    "public address (PageReader(allow_private=True) allows it)"
                )

    async def read(self, url: str) -> Page:
        """Fetch ``url`` (following redirects, each checked) and extract the main text."""
        try:
            final, body, ctype, encoding, cut = await asyncio.wait_for(
                self._fetch(url), self.deadline_s
            )
        except asyncio.TimeoutError:
            raise SearchError(
                f"open page: {url}: not read within the {self.deadline_s:g} s deadline"
            ) from None
        html = body.decode(encoding, errors="replace")
        page = await asyncio.to_thread(self._extract, url, final, html, ctype)
        page.truncated = page.truncated or cut
        return page

    async def _fetch(self, url: str) -> tuple[str, bytes, str, str, bool]:
        """``(final URL, body, content type, encoding, cut at max_bytes)``."""
        current = url
        async with httpx.AsyncClient(
            timeout=self.timeout_s, headers=self.headers, follow_redirects=False
        ) as client:
            for _ in range(self.max_redirects + 1):
                await self.check_url(current)
                try:
                    async with client.stream("GET", current) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            current = urljoin(current, resp.headers["location"])
                            continue
                        if resp.status_code >= 400:
                            raise SearchError(f"open page: {current}: HTTP {resp.status_code}")
                        body = bytearray()
                        cut = False
                        async for part in resp.aiter_bytes():
                            body += part
                            if len(body) > self.max_bytes:
                                cut = True
                                del body[self.max_bytes :]
                                break
                        ctype = resp.headers.get("content-type", "")
                        encoding = resp.encoding or "utf-8"
                except httpx.HTTPError as exc:
                    raise SearchError(
                        f"open page: {current}: {type(exc).__name__}: {exc}"
                    ) from None
                return current, bytes(body), ctype, encoding, cut
        raise SearchError(f"open page: {url}: more than {self.max_redirects} redirects")

    def _extract(self, url: str, final_url: str, html: str, ctype: str) -> Page:
        m = _TITLE.search(html)
        title = " ".join(m.group(1).split()) if m else ""
        if "html" in ctype or html.lstrip()[:1] == "<":
            trafilatura = require("trafilatura", "web")
            text = trafilatura.extract(html, url=final_url, include_comments=False) or ""
        else:
            text = html
        truncated = len(text) > self.max_chars
        return Page(url, final_url, title, text[: self.max_chars], truncated)

    def read_sync(self, url: str) -> Page:
        """Blocking :meth:`read`."""
        return asyncio.run(self.read(url))
