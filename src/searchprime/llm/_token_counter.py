"""Chat token counting for an OpenAI-compatible endpoint, in one async code path.

Modes, tried in order when the first count is asked for: a Hugging Face tokenizer if one was
given (see :mod:`searchprime.llm.tokens`); the server's own tokenizer (vLLM ``POST /tokenize``
with ``messages``, or llama.cpp ``POST /apply-template`` + ``POST /tokenize``); and only if
neither works a documented estimate of ``ceil(chars / 4)`` per chat-formatted message plus 4
tokens of template overhead. Counts are cached by content. A server that stops answering later
gets the estimate for that history, and is asked again next time.

The client's blocking ``count_tokens`` runs :meth:`TokenCounter.count` on its private loop
(:class:`searchprime._http.SyncBridge`), so sync and async counts cannot drift apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from searchprime._http import HTTPFailure
from searchprime.errors import LLMError
from searchprime.records import Message

__all__ = ["CHARS_PER_TOKEN", "Fetch", "TokenCounter", "estimate_tokens"]

CHARS_PER_TOKEN = 4
"""The documented last-resort token estimate: ceil(chars / 4) per message + 4 per message."""

Fetch = Callable[[str, str, Any], Awaitable[Any]]
"""One attempt, no retries: ``await fetch(method, url, json_body)`` -> the reply's JSON."""

_CACHE_SIZE = 4096
# the server stopped answering, or answered something else: estimate this one
_COUNT_ERRORS = (HTTPFailure, LLMError, ValueError, KeyError, TypeError)
_MODES = {
    None: "not yet used",
    "tokenizer": "local Hugging Face tokenizer",
    "vllm": "server POST /tokenize (messages)",
    "llamacpp": "server POST /apply-template + /tokenize",
    "estimate": f"estimate: ceil(chars/{CHARS_PER_TOKEN}) + 4 per message",
}


def estimate_tokens(payload: Sequence[dict[str, str]]) -> int:
    """The last-resort estimate: ``ceil(len(content) / 4) + 4`` per message, + 2 for the reply.

    >>> estimate_tokens([{"role": "user", "content": "12345"}])
    8
    """
    return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + 4 for m in payload) + 2


class TokenCounter:
    """Counts the tokens of chat histories for one endpoint (thread-safe cache).

    Args:
        tokenizer: a Hugging Face tokenizer, a path/name to load one from, or ``None`` (ask
            the server).
        root_url: the server root, where ``/tokenize`` and ``/apply-template`` live.
    """

    def __init__(self, tokenizer: Any, root_url: str):
        self.root_url = root_url
        self.mode: str | None = None  # "tokenizer" | "vllm" | "llamacpp" | "estimate"
        self._spec = tokenizer
        self._tokenizer: Any = None
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pick_lock: asyncio.Lock | None = None
        self._pick_loop: asyncio.AbstractEventLoop | None = None

    def describe(self) -> str:
        """How counts are made, in words (for ``describe()["token_counting"]``)."""
        return _MODES[self.mode]

    def known(self, messages: Sequence[Message]) -> int | None:
        """The count without any I/O, when there is one (the estimate mode, or cached)."""
        if self.mode == "estimate":  # cheaper than the cache key
            return estimate_tokens([{"content": m.content} for m in messages])
        return self._cached(_key(_payload(messages)))

    async def count(
        self,
        messages: Sequence[Message],
        fetch: Fetch,
        model: Callable[[], Awaitable[str | None]],
    ) -> int:
        """Tokens of the chat-formatted ``messages``; ``model()`` names the server's model."""
        if self.mode == "estimate":
            return estimate_tokens([{"content": m.content} for m in messages])
        payload = _payload(messages)
        key = _key(payload)
        cached = self._cached(key)
        if cached is not None:
            return cached
        count: int | None = None
        if self.mode is None:
            async with self._lock():  # many agents start at once: probe only once
                if self.mode is None:
                    self.mode, count = await self._pick(payload, fetch, model)
        if count is None:
            try:
                count = await self._count(self.mode, payload, fetch, model)
            except _COUNT_ERRORS:
                pass
        return self._remember(key, estimate_tokens(payload) if count is None else count)

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._pick_lock is None or self._pick_loop is not loop:
            self._pick_lock, self._pick_loop = asyncio.Lock(), loop
        return self._pick_lock

    async def _pick(
        self, payload: list[dict[str, str]], fetch: Fetch, model: Callable[[], Awaitable[Any]]
    ) -> tuple[str, int | None]:
        """The first mode that works, and the count it gave."""
        if self._spec is not None:
            await asyncio.to_thread(self._load_tokenizer)
            return "tokenizer", None
        for mode in ("vllm", "llamacpp"):
            try:
                return mode, await self._count(mode, payload, fetch, model)
            except _COUNT_ERRORS:
                continue
        return "estimate", None

    async def _count(
        self,
        mode: str | None,
        payload: list[dict[str, str]],
        fetch: Fetch,
        model: Callable[[], Awaitable[str | None]],
    ) -> int | None:
        if mode == "tokenizer":
            from searchprime.llm.tokens import count_chat_tokens

            return await asyncio.to_thread(count_chat_tokens, self._tokenizer, payload)
        if mode == "vllm":
            body: dict[str, Any] = {"messages": payload, "add_generation_prompt": True}
            name = await model()
            if name:
                body["model"] = name
            data = await fetch("POST", f"{self.root_url}/tokenize", body)
            return int(data["count"])
        if mode == "llamacpp":
            data = await fetch("POST", f"{self.root_url}/apply-template", {"messages": payload})
            body = {"content": data["prompt"], "add_special": True, "parse_special": True}
            return len((await fetch("POST", f"{self.root_url}/tokenize", body))["tokens"])
        return None

    def _load_tokenizer(self) -> None:
        from searchprime.llm.tokens import load_tokenizer

        spec = self._spec
        self._tokenizer = load_tokenizer(spec) if isinstance(spec, (str, os.PathLike)) else spec

    def _cached(self, key: str) -> int | None:
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _remember(self, key: str, count: int) -> int:
        with self._cache_lock:
            self._cache[key] = count
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return count


def _payload(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _key(payload: list[dict[str, str]]) -> str:
    return hashlib.sha1(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()
