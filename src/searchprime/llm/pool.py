"""Several OpenAI-compatible servers behind one policy: least-loaded dispatch and failover.

One :class:`OpenAIPool` holds an :class:`~searchprime.llm.openai_http.OpenAIChat` per server
(each with its own connection pool, retries and ``concurrency`` cap) and sends every request to
the server with the fewest requests in flight, ties taken in turn, so a slow server gets less
work by itself. A server whose request fails after the client's own retries (no connection, a
5xx, a timeout, a reply it cannot use) is *taken out* for a cooldown that doubles with each
failure in a row (``cooldown_s`` up to ``cooldown_max_s``), and the request is sent to another
server at once, each server at most once per request. When a cooldown ends the server gets one
request at a time (a probe) until one succeeds. A reply the server would give any request the
same way (a 4xx such as "context too long") is the request's fault: it is raised as is and the
server stays in. When no server is left to try, :meth:`OpenAIPool.complete` raises
:class:`~searchprime.errors.LLMError`, so a rollout records the attempt as a backend error.

    policy:
      kind: openai
      base_url: [http://gpu0:8000/v1, http://gpu1:8000/v1]   # or --policy-url twice
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import Completion, SamplingParams
from searchprime.llm.openai_http import EndpointUnreachable, OpenAIChat
from searchprime.records import Message
from searchprime.records.sanitize import one_line

__all__ = ["OpenAIPool", "server_at_fault"]


def server_at_fault(exc: BaseException) -> bool:
    """Whether a client error says the *server* failed rather than the request.

    Only a reply not worth retrying (:attr:`LLMError.final`, a 4xx) is the request's fault;
    any other :class:`LLMError` (the model lookup failed, retries ran out) counts against the
    server.
    """
    return isinstance(exc, LLMError) and not exc.final


@dataclass
class _Server:
    """One server of the pool and what the pool knows about it."""

    client: OpenAIChat
    in_flight: int = 0
    requests: int = 0
    failures: int = 0  # failures in a row; > 0 while out or on probation
    taken_out: int = 0
    out_until: float = 0.0
    last_error: str | None = None

    @property
    def url(self) -> str:
        return self.client.base_url

    def available(self, now: float) -> bool:
        if now < self.out_until:
            return False
        return self.failures == 0 or self.in_flight == 0  # on probation: one probe at a time


class OpenAIPool:
    """An LLM spread over several OpenAI-compatible servers serving the same model.

    Args:
        base_urls: two or more server URLs, e.g. ``http://gpu0:8000/v1``.
        model: model name; ``None`` looks it up on each server (they must agree).
        cooldown_s: how long a failed server stays out the first time; it doubles with each
            failure in a row, up to ``cooldown_max_s``.
        **client: the settings of every server's :class:`OpenAIChat` (``api_key_env``,
            ``timeout_s``, ``max_retries``, ``concurrency`` per server, ``tokenizer``, ...).
            Retries happen on the same server first: a lower ``max_retries`` fails over sooner.
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str | None = None,
        *,
        cooldown_s: float = 5.0,
        cooldown_max_s: float = 120.0,
        **client: Any,
    ):
        urls = [u.rstrip("/") for u in base_urls]
        if not urls:
            raise ConfigError("llm.base_url: no server URL given")
        if len(set(urls)) != len(urls):
            dup = next(u for u in urls if urls.count(u) > 1)
            raise ConfigError(f"llm.base_url: {dup} is listed twice")
        if cooldown_s < 0 or cooldown_max_s < cooldown_s:
            raise ConfigError(
                f"llm.cooldown_s: need 0 <= cooldown_s <= cooldown_max_s, got {cooldown_s} "
                f"and {cooldown_max_s}"
            )
        self.cooldown_s = float(cooldown_s)
        self.cooldown_max_s = float(cooldown_max_s)
        self._servers = [_Server(OpenAIChat(u, model, **client)) for u in urls]
        self._turn = 0  # where the next tie-break starts (round robin)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def model(self) -> str | None:
        """The model name (the first server's, once known)."""
        return next((s.client.model for s in self._servers if s.client.model), None)

    @property
    def name(self) -> str:
        """``openai:<model>`` like a single server (the servers are one policy)."""
        return f"openai:{self.model or self._servers[0].url}"

    @property
    def base_urls(self) -> list[str]:
        return [s.url for s in self._servers]

    def __repr__(self) -> str:
        return f"OpenAIPool(base_urls={self.base_urls!r}, model={self.model!r})"

    def servers(self) -> list[dict[str, Any]]:
        """Per server: URL, requests sent, times taken out, in flight, out now, last error."""
        now = time.monotonic()
        return [
            {
                "url": s.url,
                "requests": s.requests,
                "taken_out": s.taken_out,
                "in_flight": s.in_flight,
                "out": now < s.out_until,
                "last_error": s.last_error,
            }
            for s in self._servers
        ]

    def _pick(self, tried: set[int]) -> int | None:
        """The available, untried server with the fewest requests in flight (ties in turn)."""
        now = time.monotonic()
        n = len(self._servers)
        best: int | None = None
        for step in range(n):
            i = (self._turn + step) % n
            s = self._servers[i]
            if i in tried or not s.available(now):
                continue
            if best is None or s.in_flight < self._servers[best].in_flight:
                best = i
        if best is not None:
            self._turn = (best + 1) % n
        return best

    def _take_out(self, server: _Server, exc: BaseException) -> None:
        server.failures += 1
        server.taken_out += 1
        server.last_error = one_line(str(exc), 300)
        rest = min(self.cooldown_max_s, self.cooldown_s * 2 ** (server.failures - 1))
        server.out_until = time.monotonic() + rest

    def _preferred(self) -> OpenAIChat:
        """The first server that is in (token counts keep one cache warm)."""
        now = time.monotonic()
        return next(
            (s.client for s in self._servers if now >= s.out_until), self._servers[0].client
        )

    # ------------------------------------------------------------------ LLM protocol
    async def prepare(self) -> None:
        """Prepare every server at once; those that fail are taken out. Raises the first
        failure when none is ready, :class:`LLMError` when they serve different models."""
        results = await asyncio.gather(
            *(s.client.prepare() for s in self._servers), return_exceptions=True
        )
        for server, result in zip(self._servers, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, LLMError):
                    raise result
                self._take_out(server, result)
        if all(isinstance(r, BaseException) for r in results):
            unreachable = all(isinstance(r, EndpointUnreachable) for r in results)
            kind = EndpointUnreachable if unreachable else LLMError
            first = f"{self._servers[0].url}: {results[0]}"
            raise kind(f"none of {len(results)} servers is ready; {first}")
        models = {s.client.model for s in self._servers if s.client.model}
        if len(models) > 1:
            listed = ", ".join(f"{s.url}: {s.client.model}" for s in self._servers)
            raise LLMError(f"the servers serve different models ({listed}); name one (model)")

    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """One completion from the least-loaded server, failing over to the others."""
        tried: set[int] = set()
        while True:
            i = self._pick(tried)
            if i is None:
                raise LLMError(self._none_left(tried))
            tried.add(i)
            server = self._servers[i]
            server.in_flight += 1
            server.requests += 1
            try:
                completion = await server.client.complete(messages, params)
            except LLMError as exc:
                if not server_at_fault(exc):
                    raise
                self._take_out(server, exc)
                continue
            finally:
                server.in_flight -= 1
            server.failures = 0
            completion.meta["server"] = server.url
            return completion

    def _none_left(self, tried: set[int]) -> str:
        now = time.monotonic()
        parts = []
        for i, s in enumerate(self._servers):
            if i in tried:
                parts.append(f"{s.url} failed: {s.last_error}")
            elif now < s.out_until:
                parts.append(f"{s.url} out for {s.out_until - now:.0f} s more")
            else:
                parts.append(f"{s.url} busy with a probe after: {s.last_error}")
        return one_line(f"no policy server left ({len(self._servers)}): " + "; ".join(parts))

    async def acount_tokens(self, messages: Sequence[Message]) -> int:
        """Token count from the first server that is in (see :meth:`OpenAIChat.acount_tokens`)."""
        return await self._preferred().acount_tokens(messages)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """:meth:`acount_tokens` for blocking callers."""
        return self._preferred().count_tokens(messages)

    def describe(self) -> dict[str, Any]:
        """The first server's settings, with every URL and the cooldowns (no secrets)."""
        described = self._preferred().describe()
        described["base_url"] = self.base_urls
        described["cooldown_s"] = self.cooldown_s
        described["cooldown_max_s"] = self.cooldown_max_s
        return described

    async def aclose(self) -> None:
        """Close every server's connection pools."""
        for server in self._servers:
            await server.client.aclose()
