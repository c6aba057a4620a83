"""Micro-batching: concurrent ``search`` calls are merged into one call of a batched function.

While one batch runs in a worker thread, new requests queue up; when it finishes, everything
queued becomes the next batch. There is no timer, so a lone request is never delayed, and
under load batches grow by themselves. CPU work never runs on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["MicroBatcher"]


class MicroBatcher(Generic[T]):
    """Wrap ``fn(queries, topk) -> list[list[T]]`` (blocking) as a batching coroutine."""

    def __init__(
        self,
        fn: Callable[[list[str], int], list[list[T]]],
        *,
        max_batch: int = 1024,
        executor: Executor | None = None,
    ):
        self.fn = fn
        self.max_batch = max_batch
        self.executor = executor
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[list[str], int, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.queries = 0

    async def __call__(self, queries: Sequence[str], topk: int) -> list[list[T]]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (e.g. asyncio.run twice)
            self._loop, self._pending, self._task = loop, [], None
        fut: asyncio.Future = loop.create_future()
        self._pending.append((list(queries), topk, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch: list[tuple[list[str], int, asyncio.Future]] = []
            size = 0
            while self._pending and (
                not batch or size + len(self._pending[0][0]) <= self.max_batch
            ):
                item = self._pending.pop(0)
                batch.append(item)
                size += len(item[0])
            flat = [q for qs, _, _ in batch for q in qs]
            kmax = max(k for _, k, _ in batch)
            try:
                results = await loop.run_in_executor(self.executor, self.fn, flat, kmax)
            except Exception as exc:  # hand the failure to every caller in the batch
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.queries += len(flat)
            pos = 0
            for qs, k, fut in batch:
                part = [r[:k] for r in results[pos : pos + len(qs)]]
                pos += len(qs)
                if not fut.done():
                    fut.set_result(part)
