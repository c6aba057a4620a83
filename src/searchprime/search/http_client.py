"""A :class:`SearchBackend` that queries a Search-R1-compatible ``POST /retrieve`` server.

Works against ``searchprime index serve`` and against Search-R1's own retrieval server: it
sends ``{"queries", "topk", "return_scores": true}`` and accepts either result shape
(``{"document", "score"}`` items or bare documents; documents with ``contents`` or with
``title``/``text``). Requests go through the shared transport (:mod:`searchprime._http`):
connection errors, timeouts, a reply that is not JSON, 408/409/425/429 and 5xx are retried with
exponential backoff and full jitter, honouring ``Retry-After``; other 4xx fail at once.
Failures raise :class:`SearchError`, with the bearer token masked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from searchprime import secrets
from searchprime._http import HTTPFailure, RetryPolicy, SyncBridge, Transport
from searchprime.errors import ConfigError, SearchError
from searchprime.records import SearchHit
from searchprime.search.format import split_contents

__all__ = ["RetrieverClient", "document_to_hit", "parse_result"]


def document_to_hit(doc: Any, score: float | None = None) -> SearchHit:
    """Turn one returned document (either corpus layout) into a :class:`SearchHit`."""
    if isinstance(doc, str):
        doc = {"contents": doc}
    if not isinstance(doc, dict):
        raise SearchError(f"retriever returned a {type(doc).__name__} where a document belongs")
    if "text" in doc and isinstance(doc.get("text"), str):
        title, text = doc.get("title") or "", doc["text"]
    else:
        title, text = split_contents(str(doc.get("contents", "")))
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
                hits.append(document_to_hit(item["document"], _score(item.get("score"))))
            else:
                hits.append(document_to_hit(item))
        out.append(hits)
    return out


def _score(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SearchError(f"retriever returned a score that is not a number: {value!r}") from None


class RetrieverClient:
    """Search over HTTP against a Search-R1-style retrieval server.

    ``search_sync`` runs on a private event loop of the client's own (connections are kept
    between calls); :meth:`aclose` closes both pools.
    """

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
        self.max_connections = max_connections
        self._headers: dict[str, str] = {}
        if token_env:
            secrets.register_env(token_env)  # masked in every text written or printed
            token = os.environ.get(token_env)
            if not token:
                raise ConfigError(f"token_env: environment variable {token_env} is not set")
            self._headers["Authorization"] = f"Bearer {token}"
        self._policy = RetryPolicy(retries=retries, backoff_base_s=backoff_s)
        self._transport = self._new_transport()
        self._bridge: SyncBridge | None = None

    def _new_transport(self) -> Transport:
        return Transport(
            self.url,
            timeout_s=self.timeout,
            max_connections=self.max_connections,
            headers=self._headers.copy,
        )

    async def _post(
        self, transport: Transport, queries: Sequence[str], topk: int | None
    ) -> list[list[SearchHit]]:
        body = {"queries": list(queries), "topk": topk or self.topk, "return_scores": True}
        try:
            hits, _ = await transport.request(
                "POST",
                self.url,
                body,
                policy=self._policy,
                parse=lambda data: parse_result(data, len(queries)),
            )
        except HTTPFailure as exc:
            raise SearchError(exc.summary(f"retriever {self.url}", "tries")) from None
        return hits

    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """POST the queries; retried on transient failures."""
        if not queries:
            return []
        return await self._post(self._transport, queries, topk)

    def search_sync(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """Blocking variant of :meth:`search` (callable inside a running event loop too)."""
        if not queries:
            return []
        if self._bridge is None:
            self._bridge = SyncBridge(self._new_transport)
        return self._bridge.run(lambda transport: self._post(transport, queries, topk))

    def describe(self) -> dict[str, Any]:
        """Settings to record (never the token)."""
        return {"kind": "http", "url": self.url, "topk": self.topk, "timeout": self.timeout}

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self._transport.aclose()
        if self._bridge is not None:
            bridge, self._bridge = self._bridge, None
            bridge.close()
