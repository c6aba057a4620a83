"""An OpenAI-compatible chat client (vLLM, SGLang, llama.cpp, hosted APIs) over aiohttp.

Every request goes to ``POST {base_url}/chat/completions`` through one pooled
``aiohttp.ClientSession`` per event loop; at most ``concurrency`` requests are in flight per
client. Why aiohttp and not httpx: httpx's async pool (httpcore) scans every pooled connection
for every request (encode/httpx#3215) and costs ~9 ms of CPU per request at 64 connections, so a
64-wide rollout against a 100 ms server reached only 6-10% of ideal throughput. Tuning
``httpx.Limits`` (keep-alive expiry) did not help, sharding over 8 clients reached ~51% and
httpx2 ~46%, while aiohttp costs ~0.15 ms of CPU per request at any width and reached 80-87% of
ideal bare on the shared 2-CPU box (bench/rollout_overhead.py measures both clients). The
session is built without ``trust_env`` (which costs two thread-pool hops per request); the
environment's proxy is looked up once per pool instead. The rarely used blocking paths
(``count_tokens``, ``describe``) keep a small ``httpx.Client``.
Failures that
are worth retrying (HTTP 408/409/429/5xx, timeouts, connection errors) are retried with
exponential backoff and full jitter, honouring ``Retry-After`` (seconds or an HTTP date). A
``200`` reply that cannot be used (not JSON, no ``choices``, a wrong shape) is retried the same
way; when every attempt failed to connect the error is :class:`EndpointUnreachable`. The API
key is read from the environment variable named by ``api_key_env`` when the connection pool is
created, registered with :mod:`searchprime.secrets` and only ever sent as an
``Authorization: Bearer`` header: it never appears in :meth:`OpenAIChat.describe`, ``repr`` or
error messages (error texts are masked before they are cut, so no piece of it survives either).

The model lookup (``GET /models``, when no model is named) happens once per client:
:meth:`OpenAIChat.prepare` does it before a run, and a failed lookup is not repeated per task.

Token counting (``count_tokens``) uses, in order: a Hugging Face tokenizer if one was given
(see :mod:`searchprime.llm.tokens`); the server's own tokenizer (vLLM ``POST /tokenize`` with
``messages``, or llama.cpp ``POST /apply-template`` + ``POST /tokenize``); and only if neither
works a documented estimate of ``ceil(chars / 4)`` per chat-formatted message plus 4 tokens of
template overhead. Which one is in use is recorded in ``describe()["token_counting"]``.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import os
import random
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import timezone
from typing import Any

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from searchprime import secrets
from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import Completion, SamplingParams, restore_stop
from searchprime.records import Message
from searchprime.records.sanitize import format_error, one_line

__all__ = ["EndpointUnreachable", "OpenAIChat", "RETRY_STATUSES", "parse_retry_after"]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
"""HTTP statuses retried (plus every other 5xx)."""

CHARS_PER_TOKEN = 4
"""The documented last-resort token estimate: ceil(chars / 4) per message + 4 per message."""

_EXCERPT_CHARS = 300
_EXCERPT_SCAN = 65536  # bytes of an error body masked before the excerpt is cut from them
_TOKEN_CACHE_SIZE = 4096

_SYNC_COUNT_ERRORS = (httpx.HTTPError, ValueError, KeyError, TypeError, LLMError)
_TIMEOUTS = (asyncio.TimeoutError, TimeoutError)  # the same class from Python 3.11 on
# could not open a connection at all (refused, DNS, connect timeout): nothing is listening
_CONNECT_ERRORS = (
    aiohttp.ClientConnectorError,
    getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ClientConnectorError),
)
_ASYNC_COUNT_ERRORS = (aiohttp.ClientError, *_TIMEOUTS, ValueError, KeyError, TypeError, LLMError)


def _dumps(body: Any) -> bytes:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: send it \u-escaped, valid JSON all the same
        return json.dumps(body, separators=(",", ":")).encode()


async def _owned(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    """Hold ``session`` open until closed; ``asyncio.run`` closes (finalises) it at loop end.

    ``asyncio.run`` calls ``loop.shutdown_asyncgens()`` before closing its loop, which runs the
    ``finally`` below inside that loop: a client the caller forgot to ``aclose()`` still shuts
    its sockets cleanly instead of logging "Unclosed client session" at exit.
    """
    try:
        yield
    finally:
        await session.close()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class EndpointUnreachable(LLMError):
    """Every attempt to reach the endpoint failed to connect (nothing listening, DNS, ...)."""


class _BadReply(Exception):
    """A 200 reply that cannot be used; the message says what is wrong, in words."""


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
        self._tokenizer_spec = tokenizer
        self._tokenizer: Any = None
        self._token_mode: str | None = None  # "tokenizer" | "vllm" | "llamacpp" | "estimate"
        self._token_cache: OrderedDict[str, int] = OrderedDict()
        self._token_lock = threading.Lock()
        self._rng = random.Random()
        self._client: aiohttp.ClientSession | None = None
        self._client_owner: Any = None  # the _owned() generator that closes _client
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._proxy: str | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        self._sem: asyncio.Semaphore | None = None
        self._model_lock: asyncio.Lock | None = None
        self._token_mode_lock: asyncio.Lock | None = None
        self._sync_client: httpx.Client | None = None
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

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))

    async def _session(self) -> aiohttp.ClientSession:
        """One pooled session per event loop (a new loop, e.g. a second ``asyncio.run``, gets a
        fresh pool; the old one belonged to a closed loop and is closed without I/O)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        old = self._client_owner
        # completions are capped by the semaphore; the pool leaves as many connections again
        # for the short token-count and /models requests so they never queue behind generations
        connector = aiohttp.TCPConnector(
            limit=2 * self.concurrency,
            limit_per_host=0,
            ssl=_ssl_context() if self.base_url.startswith("https://") else True,
        )
        timeout = aiohttp.ClientTimeout(
            total=self.timeout_s + 1.0,  # the hard wall-clock limit (a server trickling bytes)
            sock_connect=min(10.0, self.timeout_s),
            sock_read=self.timeout_s,  # the per-request timeout: no byte for timeout_s
        )
        # proxies from the environment like httpx, looked up once: aiohttp's trust_env=True would
        # run two thread-pool hops (netrc, proxy env) on every request
        self._proxy, self._proxy_auth = _env_proxy(self.base_url)
        session = aiohttp.ClientSession(
            connector=connector, headers=self._headers(), timeout=timeout, trust_env=False
        )
        owner = _owned(session)
        self._client, self._client_owner, self._client_loop = session, owner, loop
        self._sem = asyncio.Semaphore(self.concurrency)
        self._model_lock = asyncio.Lock()
        self._token_mode_lock = asyncio.Lock()
        await owner.__anext__()
        if old is not None:
            await _close_owner(old)
        return session

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter, or the server's ``Retry-After`` when it names a wait (capped)."""
        if retry_after is not None:
            return min(retry_after, max(self.backoff_max_s, 0.0))
        cap = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return self._rng.uniform(0.0, cap)

    def _excerpt(self, raw: bytes) -> str:
        """The start of a reply body on one line, masked BEFORE it is cut."""
        text = self._scrub(raw[:_EXCERPT_SCAN].decode("utf-8", errors="replace"))
        return one_line(text, _EXCERPT_CHARS)

    async def _send(
        self, client: aiohttp.ClientSession, method: str, url: str, data: bytes | None
    ) -> tuple[int, bytes, str | None]:
        """One HTTP exchange: (status, body bytes, Retry-After header)."""
        # sock_read times each read; the session's total bounds a trickling server
        async with client.request(
            method,
            url,
            data=data,
            allow_redirects=False,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as resp:
            return resp.status, await resp.read(), resp.headers.get("Retry-After")

    async def _request(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        parse: Any = None,
    ) -> tuple[Any, int]:
        """Send with retries; return (``parse(decoded JSON)`` or the JSON, retries used).

        ``parse`` may raise :class:`_BadReply` for a reply it cannot use: that attempt is
        retried like a 5xx. Raises :class:`EndpointUnreachable` when no attempt connected,
        else :class:`LLMError`; every message is one line with the key masked.
        """
        client = await self._session()
        data = None if body is None else _dumps(body)
        last = "no attempt made"
        connect_failures = 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            wait: float | None = None  # the server's Retry-After, if it named one
            try:
                status, raw, retry_after = await self._send(client, method, url, data)
            except _CONNECT_ERRORS as exc:  # before _TIMEOUTS: a connect timeout is both
                connect_failures += 1
                last = f"cannot connect: {format_error(exc, 200)}"
            except _TIMEOUTS:  # aiohttp's sock_read / total timeouts
                last = f"timed out after {self.timeout_s:g} s"
            except aiohttp.ClientError as exc:  # dropped, truncated (payload) ...
                last = f"connection error: {format_error(exc, 200)}"
            else:
                if status >= 400:
                    last = f"HTTP {status}: {self._excerpt(raw)}"
                    if status not in RETRY_STATUSES and status < 500:
                        self.stats["failures"] += 1
                        raise LLMError(self._scrub(f"{method} {url} failed: {last}"))
                    wait = parse_retry_after(retry_after)
                else:
                    try:
                        decoded = json.loads(raw)
                    except (ValueError, RecursionError):
                        last = f"HTTP {status}: response is not JSON: {self._excerpt(raw)}"
                    else:
                        try:
                            return (decoded if parse is None else parse(decoded)), attempt
                        except _BadReply as exc:
                            last = f"HTTP {status}: malformed reply ({exc}): {self._excerpt(raw)}"
            if attempt < self.max_retries:
                await asyncio.sleep(self._backoff(attempt, wait))
        self.stats["failures"] += 1
        attempts = self.max_retries + 1
        message = self._scrub(f"{method} {url} failed after {attempts} attempts: {last}")
        if connect_failures == attempts:
            raise EndpointUnreachable(message)
        raise LLMError(message)

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
                await self._request("GET", f"{self.base_url}/models", None)
            except EndpointUnreachable:
                raise
            except LLMError:
                pass
        self._prepared = True

    async def _ensure_model(self) -> str:
        if self.model is not None:
            return self.model
        await self._session()
        assert self._model_lock is not None
        async with self._model_lock:
            if self.model is None:
                if self._model_error is not None:  # looked up once per client, not per task
                    raise type(self._model_error)(str(self._model_error))
                where = f"{self.base_url}/models"
                self._lookup_done = True
                try:
                    self.model, _ = await self._request(
                        "GET", where, None, parse=lambda d: _first_model_id(d, where)
                    )
                except LLMError as exc:
                    self._model_error = exc
                    raise
        return self.model

    def _discover_model_sync(self) -> str | None:
        if self._lookup_done:
            return self.model
        self._lookup_done = True
        try:
            response = self._sync().get(f"{self.base_url}/models")
            response.raise_for_status()
            self.model = _first_model_id(response.json(), f"{self.base_url}/models")
        except (httpx.HTTPError, ValueError, LLMError):
            return None
        return self.model

    # ------------------------------------------------------------------ LLM protocol
    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """One chat completion, retried on transient failures; raises :class:`LLMError`."""
        model = await self._ensure_model()
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.logprobs:
            body["logprobs"] = True
        body.update(self.extra_body)
        await self._session()
        assert self._sem is not None
        async with self._sem:
            self.stats["requests"] += 1
            start = time.perf_counter()
            url = f"{self.base_url}/chat/completions"
            fields, retries = await self._request(
                "POST", url, body, parse=lambda d: _reply_fields(d, params)
            )
            latency = time.perf_counter() - start
        return Completion(**fields, latency_s=latency, meta={"retries": retries} if retries else {})

    # ------------------------------------------------------------------ token counting
    def _sync(self) -> httpx.Client:
        if self._sync_client is None:
            self._sync_client = httpx.Client(headers=self._headers(), timeout=self._timeout())
        return self._sync_client

    def _token_key(self, messages: Sequence[Message]) -> tuple[list[dict[str, str]], str]:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        key = hashlib.sha1(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()
        return payload, key

    def _cached(self, key: str) -> int | None:
        with self._token_lock:
            if key in self._token_cache:
                self._token_cache.move_to_end(key)
                return self._token_cache[key]
        return None

    def _remember(self, key: str, count: int) -> int:
        with self._token_lock:
            self._token_cache[key] = count
            while len(self._token_cache) > _TOKEN_CACHE_SIZE:
                self._token_cache.popitem(last=False)
        return count

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the chat-formatted ``messages`` (cached by content).

        Without a local tokenizer this makes a short blocking HTTP call to the server the first
        time a given history is seen; inside an event loop use :meth:`acount_tokens`.
        """
        if self._token_mode == "estimate":  # cheaper than the cache key
            return estimate_tokens([{"content": m.content} for m in messages])
        payload, key = self._token_key(messages)
        cached = self._cached(key)
        if cached is not None:
            return cached
        return self._remember(key, self._count_uncached(payload))

    async def acount_tokens(self, messages: Sequence[Message]) -> int:
        """:meth:`count_tokens` without blocking the event loop (the agent loop prefers it).

        Server counting goes through the pooled async session; a local tokenizer runs in a
        worker thread. Same modes, same cache, same fallback as :meth:`count_tokens`.
        """
        if self._token_mode == "estimate":  # cheaper than the cache key
            return estimate_tokens([{"content": m.content} for m in messages])
        payload, key = self._token_key(messages)
        cached = self._cached(key)
        if cached is not None:
            return cached
        if self._token_mode is None:
            await self._session()
            assert self._token_mode_lock is not None
            async with self._token_mode_lock:  # many agents start at once: probe only once
                if self._token_mode is None:
                    self._token_mode = await self._apick_token_mode(payload)
        mode = self._token_mode
        count: int | None = None
        try:
            if mode == "tokenizer":
                from searchprime.llm.tokens import count_chat_tokens

                count = await asyncio.to_thread(count_chat_tokens, self._tokenizer, payload)
            elif mode == "vllm":
                count = await self._acount_vllm(payload)
            elif mode == "llamacpp":
                count = await self._acount_llamacpp(payload)
        except _ASYNC_COUNT_ERRORS:
            pass  # the server stopped answering: estimate this one, try it again next time
        return self._remember(key, estimate_tokens(payload) if count is None else count)

    def _count_uncached(self, payload: list[dict[str, str]]) -> int:
        if self._token_mode is None:
            self._token_mode = self._pick_token_mode(payload)
        mode = self._token_mode
        try:
            if mode == "tokenizer":
                from searchprime.llm.tokens import count_chat_tokens

                return count_chat_tokens(self._tokenizer, payload)
            if mode == "vllm":
                return self._count_vllm(payload)
            if mode == "llamacpp":
                return self._count_llamacpp(payload)
        except _SYNC_COUNT_ERRORS:
            pass  # the server stopped answering: estimate this one, try it again next time
        return estimate_tokens(payload)

    def _load_tokenizer(self) -> None:
        from searchprime.llm.tokens import load_tokenizer

        spec = self._tokenizer_spec
        self._tokenizer = load_tokenizer(spec) if isinstance(spec, (str, os.PathLike)) else spec

    def _pick_token_mode(self, payload: list[dict[str, str]]) -> str:
        if self._tokenizer_spec is not None:
            self._load_tokenizer()
            return "tokenizer"
        for mode, counter in (("vllm", self._count_vllm), ("llamacpp", self._count_llamacpp)):
            try:
                counter(payload)
                return mode
            except _SYNC_COUNT_ERRORS:
                continue
        return "estimate"

    async def _apick_token_mode(self, payload: list[dict[str, str]]) -> str:
        if self._tokenizer_spec is not None:
            await asyncio.to_thread(self._load_tokenizer)
            return "tokenizer"
        for mode, counter in (("vllm", self._acount_vllm), ("llamacpp", self._acount_llamacpp)):
            try:
                await counter(payload)
                return mode
            except _ASYNC_COUNT_ERRORS:
                continue
        return "estimate"

    @staticmethod
    def _vllm_body(payload: list[dict[str, str]], model: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": payload, "add_generation_prompt": True}
        if model:
            body["model"] = model
        return body

    @staticmethod
    def _vllm_count(data: Any) -> int:
        if "count" in data:
            return int(data["count"])
        raise KeyError("count")

    @staticmethod
    def _llamacpp_tokenize_body(prompt: str) -> dict[str, Any]:
        return {"content": prompt, "add_special": True, "parse_special": True}

    def _count_vllm(self, payload: list[dict[str, str]]) -> int:
        model = self.model or self._discover_model_sync()
        response = self._sync().post(
            f"{self.root_url}/tokenize", json=self._vllm_body(payload, model)
        )
        response.raise_for_status()
        return self._vllm_count(response.json())

    def _count_llamacpp(self, payload: list[dict[str, str]]) -> int:
        client = self._sync()
        response = client.post(f"{self.root_url}/apply-template", json={"messages": payload})
        response.raise_for_status()
        prompt = response.json()["prompt"]
        response = client.post(
            f"{self.root_url}/tokenize", json=self._llamacpp_tokenize_body(prompt)
        )
        response.raise_for_status()
        return len(response.json()["tokens"])

    async def _once(self, method: str, url: str, body: Any = None) -> Any:
        """One attempt, no retries (token counting falls back to the estimate instead)."""
        data = None if body is None else _dumps(body)
        status, raw, _ = await self._send(await self._session(), method, url, data)
        if status >= 400:
            raise LLMError(f"{method} {url} failed: HTTP {status}")
        return json.loads(raw)

    async def _acount_vllm(self, payload: list[dict[str, str]]) -> int:
        if self.model is None:
            try:
                data = await self._once("GET", f"{self.base_url}/models")
                self.model = _first_model_id(data, f"{self.base_url}/models")
            except _ASYNC_COUNT_ERRORS:
                pass
        body = self._vllm_body(payload, self.model)
        return self._vllm_count(await self._once("POST", f"{self.root_url}/tokenize", body))

    async def _acount_llamacpp(self, payload: list[dict[str, str]]) -> int:
        data = await self._once("POST", f"{self.root_url}/apply-template", {"messages": payload})
        body = self._llamacpp_tokenize_body(data["prompt"])
        return len((await self._once("POST", f"{self.root_url}/tokenize", body))["tokens"])

    # ------------------------------------------------------------------ bookkeeping
    def describe(self) -> dict[str, Any]:
        """Settings worth recording with each trajectory (no secrets: only the env var name)."""
        if self.model is None:
            self._discover_model_sync()
        counting = {
            None: "not yet used",
            "tokenizer": "local Hugging Face tokenizer",
            "vllm": "server POST /tokenize (messages)",
            "llamacpp": "server POST /apply-template + /tokenize",
            "estimate": f"estimate: ceil(chars/{CHARS_PER_TOKEN}) + 4 per message",
        }[self._token_mode]
        return {
            "kind": "openai",
            "base_url": self.base_url,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "concurrency": self.concurrency,
            "extra_body": self.extra_body,
            "token_counting": counting,
        }

    async def aclose(self) -> None:
        """Close the connection pools (from any event loop)."""
        owner, self._client_owner = self._client_owner, None
        self._client = self._client_loop = None
        if owner is not None:
            await _close_owner(owner)
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None


async def _close_owner(owner: Any) -> None:
    """Close a session through its :func:`_owned` generator, from whatever loop is running.

    A session whose loop is already closed is marked closed without I/O (aiohttp skips the
    sockets of a closed loop); ``asyncio.run`` will usually have closed it already.
    """
    try:
        await owner.aclose()
    except RuntimeError:  # its event loop is gone (or still busy elsewhere): nothing to await
        pass


def _ssl_context() -> ssl.SSLContext:
    """Verify certificates like httpx does: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` if set, else
    certifi's bundle (aiohttp alone would use the system store, missing in slim containers)."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _env_proxy(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) the environment names for ``url``, like httpx's
    ``trust_env``: ``HTTP(S)_PROXY`` / ``ALL_PROXY`` unless ``NO_PROXY`` matches."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None
    return str(proxy), auth


def estimate_tokens(payload: Sequence[dict[str, str]]) -> int:
    """The last-resort estimate: ``ceil(len(content) / 4) + 4`` per message, + 2 for the reply."""
    return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + 4 for m in payload) + 2


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _text(value: Any, where: str) -> str | None:
    """A text field: a string, None, or a list of text parts (``[{"type": "text", ...}]``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p.get("text") if isinstance(p, dict) else p for p in value]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
    raise _BadReply(f"{where} is {_kind(value)}, not text")


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _reply_fields(data: Any, params: SamplingParams) -> dict[str, Any]:
    """The :class:`Completion` fields of a chat reply; :class:`_BadReply` if it has none."""
    if not isinstance(data, dict):
        raise _BadReply(f"the reply is {_kind(data)}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _BadReply("no choices" if not choices else f"choices is {_kind(choices)}")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _BadReply(f"choices[0] is {_kind(choice)}, not an object")
    message = choice.get("message")
    if message is None:
        message = {"content": choice.get("text")}  # the legacy completions shape
    if not isinstance(message, dict):
        raise _BadReply(f"choices[0].message is {_kind(message)}, not an object")
    text = _text(message.get("content"), "choices[0].message.content") or ""
    reasoning = _text(
        message.get("reasoning_content", message.get("reasoning")), "choices[0].message.reasoning"
    )
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) and finish else "stop"
    if finish == "stop":
        matched = choice.get("stop_reason")  # vLLM names the stop string that matched
        if isinstance(matched, str) and matched in params.stop:
            if not text.rstrip().endswith(matched):
                text += matched
        else:
            text = restore_stop(text, params)
    logprobs = None
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        values = [t.get("logprob") if isinstance(t, dict) else None for t in lp["content"]]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            logprobs = [float(v) for v in values]
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return {
        "text": text,
        "reasoning": reasoning or None,
        "finish_reason": finish,
        "prompt_tokens": _count(usage.get("prompt_tokens")),
        "completion_tokens": _count(usage.get("completion_tokens")),
        "logprobs": logprobs,
    }


def _first_model_id(data: Any, where: str) -> str:
    try:
        return str(data["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"{where}: no model listed; pass the model name explicitly") from None
