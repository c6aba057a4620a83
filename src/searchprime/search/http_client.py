"""A :class:`SearchBackend` that queries a Search-R1-compatible ``POST /retrieve`` server.

Works against ``searchprime index serve`` and against Search-R1's own retrieval server: it
sends ``{"queries", "topk", "return_scores": true}`` and accepts either result shape
(``{"document", "score"}`` items or bare documents; documents with ``contents`` or with
``title``/``text``). Connection errors, timeouts, 429 and 5xx are retried with exponential
backoff and jitter; other 4xx fail at once. Failures raise :class:`SearchError`.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from typing import Any

import httpx

from searchprime import secrets
from searchprime.errors import ConfigError, SearchError
from searchprime.records import SearchHit
from searchprime.search.corpus import _split_contents

__all__ = ["RetrieverClient", "document_to_hit", "parse_result"]

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def document_to_hit(doc: Any, score: float | None = None) -> SearchHit:
    """Turn one returned document (either corpus layout) into a :class:`SearchHit`."""
    if isinstance(doc, str):
        doc = {"contents": doc}
    if not isinstance(doc, dict):
        raise SearchError(f"retriever returned a {type(doc).__name__} where a document belongs")
    if "text" in doc and isinstance(doc.get("text"), str):
        title, text = doc.get("title") or "", doc["text"]
    else:
        title, text = _split_contents(str(doc.get("contents", "")))
    known = {"id", "contents", "title", "text", "source", "url", "score"}
    return SearchHit(
        doc_id=str(doc.get("id", doc.get("doc_id", ""))),
        title=str(title),
        text=str(text),
        source=doc.get("source"),
        url=doc.get("url"),
        score=score if score is not None else doc.get("score"),
        meta={k: v for k, v in doc.items() if k not in known},
    )


def parse_result(payload: Any, n_queries: int) -> list[list[SearchHit]]:
    """Parse a ``/retrieve`` response body for ``n_queries`` queries."""
    if not isinstance(payload, dict) or not isinstance(payload.get("result"), list):
        raise SearchError("retriever response has no `result` list")
    rows = payload["result"]
    if len(rows) != n_queries:
        raise SearchError(f"retriever returned {len(rows)} result lists for {n_queries} queries")
    out: list[list[SearchHit]] = []
    for row in rows:
        hits = []
        for item in row:
            if isinstance(item, dict) and "document" in item:
                score = item.get("score")
                hits.append(
                    document_to_hit(item["document"], float(score) if score is not None else None)
                )
            else:
                hits.append(document_to_hit(item))
        out.append(hits)
    return out


class RetrieverClient:
    """Search over HTTP against a Search-R1-style retrieval server."""

    name = "http"

    def __init__(
        self,
        url: str,
        topk: int = 3,
        timeout: float = 30.0,
        retries: int = 3,
        token_env: str | None = None,
        *,
        backoff_s: float = 0.5,
        max_connections: int = 64,
    ):
        url = url.rstrip("/")
        self.url = url if url.endswith("/retrieve") else url + "/retrieve"
        self.topk = topk
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.token_env = token_env
        self._headers = {}
        if token_env:
            secrets.register_env(token_env)  # masked in every text written or printed
            token = os.environ.get(token_env)
            if not token:
                raise ConfigError(f"token_env: environment variable {token_env} is not set")
            self._headers["Authorization"] = f"Bearer {token}"
        self._limits = httpx.Limits(max_connections=max_connections)
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _body(self, queries: Sequence[str], topk: int | None) -> dict[str, Any]:
        return {"queries": list(queries), "topk": topk or self.topk, "return_scores": True}

    def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, limits=self._limits, headers=self._headers
            )
            self._loop = loop
        return self._client

    def _delay(self, attempt: int) -> float:
        return self.backoff_s * (2**attempt) * (0.5 + random.random())

    @staticmethod
    def _check(resp: httpx.Response) -> Any:
        if resp.status_code in _RETRY_STATUS:
            raise httpx.HTTPStatusError(
                f"HTTP {resp.status_code}", request=resp.request, response=resp
            )
        if resp.status_code >= 400:
            raise SearchError(
                f"retriever {resp.request.url}: HTTP {resp.status_code}: {resp.text[:200]}"
            )
        return resp.json()

    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """POST the queries; retried on transient failures."""
        if not queries:
            return []
        body = self._body(queries, topk)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                resp = await self._aclient().post(self.url, json=body)
                return parse_result(self._check(resp), len(queries))
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
                last = exc
                if attempt < self.retries:
                    await asyncio.sleep(self._delay(attempt))
        raise SearchError(f"retriever {self.url} failed after {self.retries + 1} tries: {last!r}")

    def search_sync(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """Blocking variant of :meth:`search` (one short-lived connection pool)."""
        if not queries:
            return []
        body = self._body(queries, topk)
        last: Exception | None = None
        with httpx.Client(timeout=self.timeout, headers=self._headers) as client:
            for attempt in range(self.retries + 1):
                try:
                    return parse_result(self._check(client.post(self.url, json=body)), len(queries))
                except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
                    last = exc
                    if attempt < self.retries:
                        import time

                        time.sleep(self._delay(attempt))
        raise SearchError(f"retriever {self.url} failed after {self.retries + 1} tries: {last!r}")

    def describe(self) -> dict[str, Any]:
        """Settings to record (never the token)."""
        return {"kind": "http", "url": self.url, "topk": self.topk, "timeout": self.timeout}

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except RuntimeError:  # its event loop is gone
                pass
