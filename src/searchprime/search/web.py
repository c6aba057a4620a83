"""Web search through Serper (the API the Behavior Priming scaffold used).

:class:`SerperSearch` implements :class:`SearchBackend`: it POSTs ``{"q", "num", "gl"?, "hl"?}``
to ``{base_url}/search`` with the key from ``$SERPER_API_KEY`` (configurable) in
``X-API-KEY``, and turns the response's ``organic`` items (``title``, ``link``, ``snippet``,
``position``, ``date``?) into hits whose URL gives the agent a domain to weigh. Requests are
rate-limited (``rate_per_s``, every attempt), bounded in concurrency, retried by the shared
transport (:mod:`searchprime._http`: 408/409/425/429, 5xx, network errors, non-JSON replies;
full-jitter backoff, ``Retry-After`` honoured; the key masked in errors), and cached in SQLite
keyed by the query and every setting that changes the answer, so reruns and RL epochs cost
nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime import secrets
from searchprime._http import HTTPFailure, RetryPolicy, Transport
from searchprime.errors import ConfigError, SearchError
from searchprime.records import SearchHit

__all__ = [
    "SQLiteCache",
    "SerperConfig",
    "SerperSearch",
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
