"""An OpenAI-compatible chat client (vLLM, SGLang, llama.cpp, hosted APIs).

Every request goes to ``POST {base_url}/chat/completions`` through the one HTTP transport
(:mod:`searchprime._http`: a pooled aiohttp session per event loop, and why aiohttp); at most
``concurrency`` completions are in flight per client. Failures that are worth retrying (HTTP
408/409/425/429/5xx, timeouts, connection errors) are retried with exponential backoff and full
jitter, honouring ``Retry-After`` (seconds or an HTTP date). A ``200`` reply that cannot be
used (not JSON, no ``choices``, a wrong shape) is retried the same way; when every attempt
failed to connect the error is :class:`EndpointUnreachable`. The API key is read from the
environment variable named by ``api_key_env`` when the connection pool is created, registered
with :mod:`searchprime.secrets` and only ever sent as an ``Authorization: Bearer`` header: it
never appears in :meth:`OpenAIChat.describe`, ``repr`` or error messages (error texts are masked
before they are cut, so no piece of it survives either).

The model lookup (``GET /models``, when no model is named) happens once per client:
:meth:`OpenAIChat.prepare` does it before a run, and a failed lookup is not repeated per task.

Token counting (:meth:`OpenAIChat.acount_tokens`; :mod:`searchprime.llm._token_counter` says
how) is one async code path; the blocking :meth:`OpenAIChat.count_tokens` and
:meth:`OpenAIChat.describe` run it on a private event loop of the client's own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp

from searchprime import secrets
from searchprime._http import (
    RETRY_STATUSES,
    HTTPFailure,
    RetryPolicy,
    SyncBridge,
    Transport,
    parse_retry_after,
)
from searchprime.errors import ConfigError, LLMError
from searchprime.llm._openai_reply import chat_body, first_model_id, reply_fields
from searchprime.llm._token_counter import TokenCounter, estimate_tokens
from searchprime.llm.base import Completion, SamplingParams
from searchprime.records import Message

__all__ = [
    "EndpointUnreachable",
    "OpenAIChat",
    "RETRY_STATUSES",
    "estimate_tokens",
    "parse_retry_after",
]

T = TypeVar("T")


class EndpointUnreachable(LLMError):
    """Every attempt to reach the endpoint failed to connect (nothing listening, DNS, ...)."""


class OpenAIChat:
    """An LLM behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (the part before ``/chat/completions``).
        model: model name; when ``None`` the first id from ``GET {base_url}/models`` is used.
        api_key_env: name of the environment variable holding the API key (never the key).
        timeout_s: per-request timeout (each attempt), seconds.
        max_retries: retries after the first attempt before raising :class:`LLMError`.
        concurrency: most requests in flight at once from this client.
        tokenizer: a Hugging Face tokenizer, or a path/name (folder or ``.gguf`` file) to load
            one from, used by :meth:`count_tokens`; ``None`` asks the server.
        extra_body: extra JSON fields merged into every request (e.g.
            ``{"chat_template_kwargs": {"enable_thinking": True}}``).
        backoff_base_s / backoff_max_s: backoff is ``uniform(0, min(max, base * 2**attempt))``.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        concurrency: int = 32,
        tokenizer: Any = None,
        extra_body: dict[str, Any] | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"llm.base_url: expected an http(s) URL, got {base_url!r}")
        if timeout_s <= 0:
            raise ConfigError(f"llm.timeout_s: must be > 0, got {timeout_s}")
        if max_retries < 0:
            raise ConfigError(f"llm.max_retries: must be >= 0, got {max_retries}")
        if concurrency < 1:
            raise ConfigError(f"llm.concurrency: must be >= 1, got {concurrency}")
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise ConfigError(f"llm.api_key_env: environment variable {api_key_env} is not set")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.extra_body = dict(extra_body or {})
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self._policy = RetryPolicy(self.max_retries, self.backoff_base_s, self.backoff_max_s)
        self._transport = self._new_transport()
        self._tokens = TokenCounter(tokenizer, self.root_url)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop _sem and _model_lock serve
        self._sem: asyncio.Semaphore | None = None
        self._model_lock: asyncio.Lock | None = None
        self._sync_client: SyncBridge | None = None  # the blocking calls' own loop and pool
        self._model_error: LLMError | None = None
        self._lookup_done = False  # a model lookup was tried (it is never repeated)
        self._prepared = False
        self.stats = {"requests": 0, "retries": 0, "failures": 0}
        secrets.register_env(api_key_env)

    # ------------------------------------------------------------------ plumbing
    @property
    def name(self) -> str:
        """``openai:<model>`` (or ``openai:<base_url>`` until the model is known)."""
        return f"openai:{self.model or self.base_url}"

    @property
    def root_url(self) -> str:
        """The server root (``base_url`` without a trailing ``/v1``), where ``/tokenize`` lives."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    @property
    def _client(self) -> aiohttp.ClientSession | None:
        """The async path's current connection pool (``None`` before use and after close)."""
        return self._transport.session

    def __repr__(self) -> str:
        return f"OpenAIChat(base_url={self.base_url!r}, model={self.model!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = secrets.register_env(self.api_key_env)
            if not key:
                raise LLMError(f"environment variable {self.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _scrub(self, text: str) -> str:
        """Mask the API key, and any 8+-character piece of it, in ``text`` (servers echo it)."""
        if self.api_key_env:
            secrets.register_env(self.api_key_env)
        return secrets.mask(text)

    def _new_transport(self) -> Transport:
        # completions are capped by the semaphore; the pool leaves as many connections again
        # for the short token-count and /models requests so they never queue behind generations
        return Transport(
            self.base_url,
            timeout_s=self.timeout_s,
            max_connections=2 * self.concurrency,
            headers=self._headers,
        )

    def _per_loop(self) -> None:
        """The semaphore and lock of the running loop (a new ``asyncio.run`` gets new ones)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._sem = asyncio.Semaphore(self.concurrency)
            self._model_lock = asyncio.Lock()

    async def _request(
        self, method: str, url: str, parse: Callable[[Any], Any] | None = None, body: Any = None
    ) -> tuple[Any, int]:
        """Send with retries; return (``parse(reply JSON)`` or the JSON, retries used).

        Raises :class:`EndpointUnreachable` when no attempt connected, else :class:`LLMError`;
        every message is one line with the key masked.
        """
        try:
            value, retries = await self._transport.request(
                method, url, body, policy=self._policy, parse=parse
            )
        except HTTPFailure as exc:
            self.stats["retries"] += exc.attempts - 1
            self.stats["failures"] += 1
            message = self._scrub(exc.summary(f"{method} {url}"))
            err = (EndpointUnreachable if exc.unreachable else LLMError)(message)
            err.final = exc.final
            raise err from None
        self.stats["retries"] += retries
        return value, retries

    def _blocking(self, fn: Callable[[Transport], Awaitable[T]]) -> T:
        """Run ``fn(transport)`` to completion from blocking code (inside a loop or not)."""
        if self._sync_client is None:
            self._sync_client = SyncBridge(self._new_transport)
        return self._sync_client.run(fn)

    # ------------------------------------------------------------------ model discovery
    async def prepare(self) -> None:
        """Check the endpoint once before a run (the agent rollout calls this).

        Looks the model up when none was named (raising :class:`LLMError` if it cannot be
        found); with a named model, probes ``GET /models`` and raises only
        :class:`EndpointUnreachable` (a server without ``/models`` may still chat).
        """
        if self._prepared:
            return
        if self.model is None:
            await self._ensure_model()
        else:
            try:
                await self._request("GET", f"{self.base_url}/models")
            except EndpointUnreachable:
                raise
            except LLMError:
                pass
        self._prepared = True

    async def _ensure_model(self) -> str:
        if self.model is not None:
            return self.model
        self._per_loop()
        assert self._model_lock is not None
        async with self._model_lock:
            if self.model is None:
                if self._model_error is not None:  # looked up once per client, not per task
                    raise type(self._model_error)(str(self._model_error))
                where = f"{self.base_url}/models"
                self._lookup_done = True
                try:
                    self.model, _ = await self._request(
                        "GET", where, lambda d: first_model_id(d, where)
                    )
                except LLMError as exc:
                    self._model_error = exc
                    raise
        return self.model

    async def _model_hint(self, transport: Transport) -> str | None:
        """The model, looked up with one attempt if unknown (a failed look-up is not repeated:
        servers that count tokens or describe themselves need no model name)."""
        if self.model is None and not self._lookup_done:
            self._lookup_done = True
            where = f"{self.base_url}/models"
            try:
                self.model, _ = await transport.request(
                    "GET", where, policy=RetryPolicy(retries=0),
                    parse=lambda d: first_model_id(d, where),
                )  # fmt: skip
            except (HTTPFailure, LLMError):
                pass
        return self.model

    # ------------------------------------------------------------------ LLM protocol
    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """One chat completion, retried on transient failures; raises :class:`LLMError`."""
        body = chat_body(await self._ensure_model(), messages, params, self.extra_body)
        self._per_loop()
        assert self._sem is not None
        async with self._sem:
            self.stats["requests"] += 1
            start = time.perf_counter()
            url = f"{self.base_url}/chat/completions"
            fields, retries = await self._request(
                "POST", url, lambda d: reply_fields(d, params), body
            )
            latency = time.perf_counter() - start
        return Completion(**fields, latency_s=latency, meta={"retries": retries} if retries else {})

    # ------------------------------------------------------------------ token counting
    async def _count_on(self, transport: Transport, messages: Sequence[Message]) -> int:
        async def fetch(method: str, url: str, body: Any) -> Any:
            value, _ = await transport.request(method, url, body, policy=RetryPolicy(retries=0))
            return value

        return await self._tokens.count(messages, fetch, lambda: self._model_hint(transport))

    async def acount_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the chat-formatted ``messages`` (cached by content), without blocking the
        event loop: server counting goes through the pooled session, a local tokenizer runs in
        a worker thread. The agent loop prefers it to :meth:`count_tokens`."""
        return await self._count_on(self._transport, messages)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """:meth:`acount_tokens` for blocking callers (same modes, same cache, same fallback).

        A history seen before costs no I/O; otherwise the count runs on the client's private
        event loop, so this works inside a running loop too (blocking it meanwhile).
        """
        known = self._tokens.known(messages)
        if known is not None:
            return known
        return self._blocking(lambda transport: self._count_on(transport, messages))

    # ------------------------------------------------------------------ bookkeeping
    def describe(self) -> dict[str, Any]:
        """Settings worth recording with each trajectory (no secrets: only the env var name)."""
        if self.model is None and not self._lookup_done:
            self._blocking(self._model_hint)
        return {
            "kind": "openai",
            "base_url": self.base_url,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "concurrency": self.concurrency,
            "extra_body": self.extra_body,
            "token_counting": self._tokens.describe(),
        }

    async def aclose(self) -> None:
        """Close the connection pools (from any event loop)."""
        await self._transport.aclose()
        if self._sync_client is not None:
            bridge, self._sync_client = self._sync_client, None
            bridge.close()
