"""Blocking calls over the async transport: a private event loop in a daemon thread.

A blocking caller (``count_tokens``, ``search_sync``) may sit inside a running event loop or
outside any, so its coroutine runs on a loop of its own in a worker thread; that loop keeps its
own :class:`~searchprime._http.transport.Transport`, so connections are reused between calls
and never shared with another loop. The thread starts on the first call and is stopped by
:meth:`SyncBridge.close` (or at interpreter exit).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from searchprime._http.transport import Transport

__all__ = ["SyncBridge"]

T = TypeVar("T")
_CLOSE_WAIT_S = 5.0


class SyncBridge:
    """Runs ``fn(transport)`` coroutines to completion for blocking callers.

    >>> bridge = SyncBridge(lambda: Transport("http://127.0.0.1:9", timeout_s=1))
    >>> async def where(t): return t.url
    >>> bridge.run(where)
    'http://127.0.0.1:9'
    >>> bridge.close()
    """

    def __init__(self, make_transport: Callable[[], Transport]):
        self._make_transport = make_transport
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: Transport | None = None
        self._thread: threading.Thread | None = None
        self._finalizer: weakref.finalize | None = None

    def run(self, fn: Callable[[Transport], Awaitable[T]]) -> T:
        """Run ``fn(transport)`` on the bridge's loop and wait for its result (or error)."""
        loop, transport = self._start()
        if threading.current_thread() is self._thread:
            raise RuntimeError("SyncBridge.run called from its own loop (it would deadlock)")
        return asyncio.run_coroutine_threadsafe(_call(fn, transport), loop).result()

    def _start(self) -> tuple[asyncio.AbstractEventLoop, Transport]:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._transport is None or not alive:
                if self._finalizer is not None:  # a forked child: the parent's thread is gone
                    self._finalizer()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="searchprime-http-bridge", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                self._transport = self._make_transport()
                self._finalizer = weakref.finalize(self, _shutdown, loop, thread, self._transport)
            return self._loop, self._transport

    def close(self) -> None:
        """Close the pool and stop the thread (a later :meth:`run` starts them again)."""
        with self._lock:
            finalizer, self._finalizer = self._finalizer, None
            self._loop = self._transport = self._thread = None
        if finalizer is not None:
            finalizer()


async def _call(fn: Callable[[Transport], Awaitable[T]], transport: Transport) -> T:
    return await fn(transport)


def _shutdown(
    loop: asyncio.AbstractEventLoop, thread: threading.Thread, transport: Transport
) -> None:
    """Close ``transport``'s pool on ``loop``, then stop the loop and (from another thread)
    wait for its thread. Garbage collection may run this on the bridge's own thread."""
    if loop.is_closed():
        return
    if not thread.is_alive():  # nothing runs the loop any more (e.g. in a forked child)
        try:
            loop.close()
        except RuntimeError:  # it still looks running (the parent's thread, before the fork)
            pass
        return

    async def stop() -> None:
        try:
            await transport.aclose()
        finally:
            loop.stop()

    asyncio.run_coroutine_threadsafe(stop(), loop)
    if threading.current_thread() is not thread:
        thread.join(_CLOSE_WAIT_S)
        if not thread.is_alive():
            loop.close()
