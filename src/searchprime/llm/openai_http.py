"""An OpenAI-compatible chat client (vLLM, SGLang, llama.cpp, hosted APIs) over httpx.

Every request goes to ``POST {base_url}/chat/completions`` through one pooled
``httpx.AsyncClient``; at most ``concurrency`` requests are in flight per client. Failures that
are worth retrying (HTTP 408/409/429/5xx, timeouts, connection errors) are retried with
exponential backoff and full jitter, honouring ``Retry-After`` (seconds or an HTTP date). The
API key is read from the environment variable named by ``api_key_env`` when the connection pool
is created and is only ever sent as an ``Authorization: Bearer`` header: it never appears in
:meth:`OpenAIChat.describe`, ``repr`` or error messages.

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
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timezone
from typing import Any

import httpx

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import Completion, SamplingParams, restore_stop
from searchprime.records import Message

__all__ = ["OpenAIChat", "RETRY_STATUSES", "parse_retry_after"]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
"""HTTP statuses retried (plus every other 5xx)."""

CHARS_PER_TOKEN = 4
"""The documented last-resort token estimate: ceil(chars / 4) per message + 4 per message."""

_EXCERPT_CHARS = 300
_TOKEN_CACHE_SIZE = 4096


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


class _Retryable(Exception):
    """One failed attempt that may be retried."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._model_lock: asyncio.Lock | None = None
        self._sync_client: httpx.Client | None = None
        self.stats = {"requests": 0, "retries": 0, "failures": 0}

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
            key = os.environ.get(self.api_key_env)
            if not key:
                raise LLMError(f"environment variable {self.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _scrub(self, text: str) -> str:
        """Remove the API key from ``text`` (a server might echo it back)."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if key:
                text = text.replace(key, "***")
        return text

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))

    def _async_client(self) -> httpx.AsyncClient:
        """One pooled client per event loop (a new loop, e.g. a second ``asyncio.run``, gets a
        fresh pool; the old one belonged to a closed loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            limits = httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            )
            self._client = httpx.AsyncClient(
                headers=self._headers(), timeout=self._timeout(), limits=limits
            )
            self._client_loop = loop
            self._sem = asyncio.Semaphore(self.concurrency)
            self._model_lock = asyncio.Lock()
        return self._client

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter, or the server's ``Retry-After`` when it names a wait (capped)."""
        if retry_after is not None:
            return min(retry_after, max(self.backoff_max_s, 0.0))
        cap = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return self._rng.uniform(0.0, cap)

    def _excerpt(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except Exception:  # noqa: BLE001 - undecodable body
            text = "<undecodable body>"
        text = " ".join(text.split())
        return self._scrub(text[:_EXCERPT_CHARS])

    async def _request(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[Any, int]:
        """Send with retries; return (decoded JSON body, retries used) or raise LLMError."""
        client = self._async_client()
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            try:
                # httpx times each read; wait_for also bounds a server that trickles bytes
                response = await asyncio.wait_for(
                    client.request(method, url, json=body), self.timeout_s + 1.0
                )
            except (httpx.TimeoutException, asyncio.TimeoutError):
                last = f"timed out after {self.timeout_s:g} s"
                error = _Retryable(last)
            except httpx.TransportError as exc:
                last = f"connection error: {type(exc).__name__}: {self._scrub(str(exc))[:200]}"
                error = _Retryable(last)
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json(), attempt
                    except ValueError:
                        last = f"HTTP {status}: response is not JSON: {self._excerpt(response)}"
                        error = _Retryable(last)
                else:
                    last = f"HTTP {status}: {self._excerpt(response)}"
                    if status not in RETRY_STATUSES and status < 500:
                        self.stats["failures"] += 1
                        raise LLMError(f"{method} {url} failed: {last}")
                    error = _Retryable(last, parse_retry_after(response.headers.get("retry-after")))
            if attempt < self.max_retries:
                await asyncio.sleep(self._backoff(attempt, error.retry_after))
        self.stats["failures"] += 1
        raise LLMError(f"{method} {url} failed after {self.max_retries + 1} attempts: {last}")

    # ------------------------------------------------------------------ model discovery
    async def _ensure_model(self) -> str:
        if self.model is not None:
            return self.model
        self._async_client()
        assert self._model_lock is not None
        async with self._model_lock:
            if self.model is None:
                data, _ = await self._request("GET", f"{self.base_url}/models", None)
                self.model = _first_model_id(data, f"{self.base_url}/models")
        return self.model

    def _discover_model_sync(self) -> str | None:
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
        self._async_client()
        assert self._sem is not None
        async with self._sem:
            self.stats["requests"] += 1
            start = time.perf_counter()
            url = f"{self.base_url}/chat/completions"
            data, retries = await self._request("POST", url, body)
            latency = time.perf_counter() - start
        return self._parse_completion(data, params, latency, retries)

    def _parse_completion(
        self, data: Any, params: SamplingParams, latency: float, retries: int
    ) -> Completion:
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError):
            raise LLMError(
                f"{self.base_url}/chat/completions: unexpected response shape: "
                f"{self._scrub(json.dumps(data)[:_EXCERPT_CHARS])}"
            ) from None
        text = message.get("content") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        finish = choice.get("finish_reason") or "stop"
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
            logprobs = [float(t.get("logprob", 0.0)) for t in lp["content"]]
        usage = data.get("usage") or {}
        meta: dict[str, Any] = {}
        if retries:
            meta["retries"] = retries
        return Completion(
            text=text,
            reasoning=reasoning or None,
            finish_reason=finish,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            logprobs=logprobs,
            latency_s=latency,
            meta=meta,
        )

    # ------------------------------------------------------------------ token counting
    def _sync(self) -> httpx.Client:
        if self._sync_client is None:
            self._sync_client = httpx.Client(headers=self._headers(), timeout=self._timeout())
        return self._sync_client

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the chat-formatted ``messages`` (cached by content).

        Without a local tokenizer this makes a short blocking HTTP call to the server the first
        time a given history is seen.
        """
        payload = [{"role": m.role, "content": m.content} for m in messages]
        key = hashlib.sha1(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()
        with self._token_lock:
            if key in self._token_cache:
                self._token_cache.move_to_end(key)
                return self._token_cache[key]
        count = self._count_uncached(payload)
        with self._token_lock:
            self._token_cache[key] = count
            while len(self._token_cache) > _TOKEN_CACHE_SIZE:
                self._token_cache.popitem(last=False)
        return count

    async def acount_tokens(self, messages: Sequence[Message]) -> int:
        """:meth:`count_tokens` without blocking the event loop (an optional extra of ours)."""
        payload = [{"role": m.role, "content": m.content} for m in messages]
        key = hashlib.sha1(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()
        with self._token_lock:
            if key in self._token_cache:
                return self._token_cache[key]
        return await asyncio.to_thread(self.count_tokens, messages)

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
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass  # the server stopped answering: estimate this one, try it again next time
        return estimate_tokens(payload)

    def _pick_token_mode(self, payload: list[dict[str, str]]) -> str:
        if self._tokenizer_spec is not None:
            from searchprime.llm.tokens import load_tokenizer

            spec = self._tokenizer_spec
            self._tokenizer = load_tokenizer(spec) if isinstance(spec, (str, os.PathLike)) else spec
            return "tokenizer"
        for mode, counter in (("vllm", self._count_vllm), ("llamacpp", self._count_llamacpp)):
            try:
                counter(payload)
                return mode
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
        return "estimate"

    def _count_vllm(self, payload: list[dict[str, str]]) -> int:
        body: dict[str, Any] = {"messages": payload, "add_generation_prompt": True}
        if self.model or self._discover_model_sync():
            body["model"] = self.model
        response = self._sync().post(f"{self.root_url}/tokenize", json=body)
        response.raise_for_status()
        data = response.json()
        if "count" in data:
            return int(data["count"])
        raise KeyError("count")

    def _count_llamacpp(self, payload: list[dict[str, str]]) -> int:
        client = self._sync()
        response = client.post(f"{self.root_url}/apply-template", json={"messages": payload})
        response.raise_for_status()
        prompt = response.json()["prompt"]
        response = client.post(
            f"{self.root_url}/tokenize",
            json={"content": prompt, "add_special": True, "parse_special": True},
        )
        response.raise_for_status()
        return len(response.json()["tokens"])

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
        """Close the connection pools."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except RuntimeError:  # its event loop is gone; nothing left to close
                pass
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None


def estimate_tokens(payload: Sequence[dict[str, str]]) -> int:
    """The last-resort estimate: ``ceil(len(content) / 4) + 4`` per message, + 2 for the reply."""
    return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + 4 for m in payload) + 2


def _first_model_id(data: Any, where: str) -> str:
    try:
        return str(data["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"{where}: no model listed; pass the model name explicitly") from None
