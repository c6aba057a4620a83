"""LLM calls for judges and discovery: cached by content hash, retried, parsed as JSON.

Every judge-like call in searchprime goes through :class:`CachedCaller`:

- the cache key is a SHA-256 of the model name, the messages, the sampling settings and the
  retry index, so an identical request is never sent twice (a rerun makes zero calls);
- raw completions are cached, parsed or not, so a rerun reproduces the same verdicts;
- :meth:`CachedCaller.ask_json` retries an unparseable reply (the retry is a different
  request: a new seed and a little temperature) and returns ``None`` when every try failed,
  which callers record as *unknown*, never as *no*.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from searchprime.errors import BackendError
from searchprime.llm.base import LLM, SamplingParams
from searchprime.records import Message

__all__ = ["CachedCaller", "CallCache", "extract_json", "request_key"]

T = TypeVar("T")


def request_key(model: str, messages: Sequence[Message], params: SamplingParams, tag: str) -> str:
    """Content hash of one request (``tag`` separates retries and purposes)."""
    payload = {
        "model": model,
        "messages": [m.model_dump() for m in messages],
        "params": params.model_dump(),
        "tag": tag,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CallCache:
    """A SQLite file of ``key -> completion text`` (``None`` path: in memory only)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, text TEXT)")
        self._db.commit()

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT text FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, text: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO calls (key, text) VALUES (?, ?)", (key, text))
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def extract_json(text: str, want: type = dict) -> Any | None:
    """The first JSON value of type ``want`` (dict or list) embedded in ``text``, else None.

    Tolerates code fences and prose around the value; never raises.
    """
    opener = "{" if want is dict else "["
    decoder = json.JSONDecoder()
    start = text.find(opener)
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, want):
            return value
        start = text.find(opener, start + 1)
    return None


class CachedCaller:
    """One LLM behind a content-hash cache, with bounded concurrency and call counters."""

    def __init__(
        self,
        llm: LLM,
        cache: CallCache | None = None,
        *,
        params: SamplingParams | None = None,
        retries: int = 2,
        concurrency: int = 8,
    ):
        self.llm = llm
        self.cache = cache if cache is not None else CallCache(None)
        self.params = params or SamplingParams(max_tokens=512, temperature=0.0, seed=0)
        self.retries = retries
        self.concurrency = concurrency
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None
        self.calls = 0  # requests actually sent to the LLM
        self.cache_hits = 0
        self.failures = 0  # backend errors (not cached)

    @classmethod
    def greedy(
        cls,
        llm: LLM,
        cache: str | Path | CallCache | None,
        *,
        max_tokens: int,
        retries: int = 2,
        concurrency: int = 8,
    ) -> CachedCaller:
        """Deterministic calls (temperature 0, seed 0), cached in ``cache`` (a path or store)."""
        store = cache if isinstance(cache, CallCache) else CallCache(cache)
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0)
        return cls(llm, store, params=params, retries=retries, concurrency=concurrency)

    @property
    def model(self) -> str:
        """Stable model identity for cache keys: ``llm.model`` when set, else ``llm.name``.

        (An OpenAI client created without a model name changes its ``name`` once it learns
        the model, so give judges an explicit model name for a cache that survives restarts.)
        """
        model = getattr(self.llm, "model", None)
        if isinstance(model, str) and model:
            return model
        return getattr(self.llm, "name", type(self.llm).__name__)

    def _semaphore(self) -> asyncio.Semaphore:
        # one semaphore per event loop: sync wrappers may call asyncio.run more than once
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:
            self._sem, self._sem_loop = asyncio.Semaphore(self.concurrency), loop
        return self._sem

    async def complete(
        self, messages: Sequence[Message], *, attempt: int = 0, tag: str = ""
    ) -> str:
        """Completion text for ``messages``; from the cache when this exact request was made."""
        params = self.params
        if attempt > 0:  # a retry must be a different request, or it would repeat the reply
            seed = (params.seed or 0) + attempt
            params = params.model_copy(
                update={"seed": seed, "temperature": max(0.7, params.temperature)}
            )
        key = request_key(self.model, messages, params, f"{tag}#{attempt}")
        cached = self.cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            return cached
        async with self._semaphore():
            self.calls += 1
            completion = await self.llm.complete(list(messages), params)
        self.cache.put(key, completion.text)
        return completion.text

    async def ask_json(
        self,
        messages: Sequence[Message],
        parse: Callable[[str], T | None],
        *,
        tag: str = "",
    ) -> tuple[T | None, str, int]:
        """Ask until ``parse(text)`` returns non-None; ``(value|None, last_text, tries)``.

        A backend failure after the backend's own retries counts as an unparseable try (and
        is not cached), so one bad request never aborts a long run.
        """
        text = ""
        for attempt in range(self.retries + 1):
            try:
                text = await self.complete(messages, attempt=attempt, tag=tag)
            except BackendError as exc:
                self.failures += 1
                text = f"<backend error: {exc}>"
                continue
            value = parse(text)
            if value is not None:
                return value, text, attempt + 1
        return None, text, self.retries + 1


def yes_no(
    value: object, yes: frozenset[str] | set[str], no: frozenset[str] | set[str]
) -> bool | None:
    """A judge's yes/no field as a bool: a JSON bool, or one of the ``yes``/``no`` words.

    Anything else is None (unknown), never False.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().strip(".").lower()
        if word in yes:
            return True
        if word in no:
            return False
    return None
