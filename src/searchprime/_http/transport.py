"""The one HTTP transport: a pooled aiohttp session per event loop and the retry loop over it.

Why aiohttp and not httpx: httpx's async pool (httpcore) scans every pooled connection for
every request (encode/httpx#3215) and costs ~9 ms of CPU per request at 64 connections, so a
64-wide rollout against a 100 ms server reached only 6-10% of ideal throughput. Tuning
``httpx.Limits`` (keep-alive expiry) did not help, sharding over 8 clients reached ~51% and
httpx2 ~46%, while aiohttp costs ~0.15 ms of CPU per request at any width and reached 80-87% of
ideal bare on the shared 2-CPU box (bench/rollout_overhead.py measures both clients).

The session is built without ``trust_env`` (which costs two thread-pool hops per request); the
environment's proxy is looked up once per pool instead, and certificates are verified like
httpx does (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else certifi). A new event loop (e.g. a
second ``asyncio.run``) gets a fresh pool; ``asyncio.run`` closes a pool nobody closed when its
loop ends. The retry policy is :mod:`searchprime._http.retry`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from searchprime import secrets
from searchprime._http.retry import BadReply, HTTPFailure, RetryPolicy, excerpt, parse_retry_after
from searchprime.records.sanitize import format_error

__all__ = ["Transport", "dumps", "env_proxy", "ssl_context"]

_TIMEOUTS = (asyncio.TimeoutError, TimeoutError)  # the same class from Python 3.11 on
# could not open a connection at all (refused, DNS, connect timeout): nothing is listening
_CONNECT_ERRORS = (
    aiohttp.ClientConnectorError,
    getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ClientConnectorError),
)


def dumps(body: Any) -> bytes:
    """Compact JSON bytes; a lone surrogate is sent ``\\u``-escaped (still valid JSON)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":")).encode()


class Transport:
    """HTTP for one service: pooled, retried, secrets masked in every error.

    Args:
        url: the service's URL (decides the proxy and whether TLS is used).
        timeout_s: per attempt: no byte for this long is a timeout (the whole exchange gets
            one more second; connecting at most 10 s).
        max_connections: the pool's size.
        headers: called when a pool is made; its headers go with every request (besides
            ``Content-Type: application/json``).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        max_connections: int = 100,
        headers: Callable[[], dict[str, str]] | None = None,
    ):
        self.url = url
        self.timeout_s = float(timeout_s)
        self.max_connections = int(max_connections)
        self._headers = headers
        self._rng = random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._owner: Any = None  # the _owned() generator that closes _session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy: str | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The most recent pool (``None`` before the first request and after :meth:`aclose`)."""
        return self._session

    async def open(self) -> aiohttp.ClientSession:
        """The pool of the running event loop, made on first use."""
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is loop:
            return self._session
        old = self._owner
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            ssl=ssl_context() if self.url.startswith("https://") else True,
        )
        timeout = aiohttp.ClientTimeout(
            total=self.timeout_s + 1.0,  # the hard wall-clock limit (a server trickling bytes)
            sock_connect=min(10.0, self.timeout_s),
            sock_read=self.timeout_s,  # the per-request timeout: no byte for timeout_s
        )
        headers = {"Content-Type": "application/json"}  # every body sent is JSON
        if self._headers is not None:
            headers.update(self._headers())
        self._proxy, self._proxy_auth = env_proxy(self.url)
        session = aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=timeout, trust_env=False
        )
        owner = _owned(session)
        self._session, self._owner, self._loop = session, owner, loop
        await owner.__anext__()
        if old is not None:  # the pool of a loop that is gone
            await _close_owner(old)
        return session

    async def send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, str | None]:
        """One exchange, no retries: ``(status, body bytes, Retry-After header)``."""
        session = await self.open()
        # sock_read times each read; the session's total bounds a trickling server
        async with session.request(
            method,
            url,
            data=data,
            headers=headers,
            allow_redirects=False,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as resp:
            return resp.status, await resp.read(), resp.headers.get("Retry-After")

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        policy: RetryPolicy,
        parse: Callable[[Any], Any] | None = None,
        headers: dict[str, str] | None = None,
        before_attempt: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Any, int]:
        """Send ``body`` as JSON with retries; return ``(parse(reply JSON), retries used)``.

        ``parse`` may raise :class:`BadReply` for a reply it cannot use (retried); any other
        exception it raises ends the request at once. ``before_attempt`` runs before every
        attempt (a rate limiter). Raises :class:`HTTPFailure` when it gives up.
        """
        data = None if body is None else dumps(body)
        last = "no attempt made"
        connect_failures = 0
        attempts = policy.retries + 1
        for attempt in range(attempts):
            wait: float | None = None  # the server's Retry-After, if it named one
            if before_attempt is not None:
                await before_attempt()
            try:
                status, raw, retry_after = await self.send(method, url, data, headers)
            except _CONNECT_ERRORS as exc:  # before _TIMEOUTS: a connect timeout is both
                connect_failures += 1
                last = f"cannot connect: {format_error(exc, 200)}"
            except _TIMEOUTS:  # aiohttp's sock_read / total timeouts
                last = f"timed out after {self.timeout_s:g} s"
            except aiohttp.ClientError as exc:  # dropped, truncated (payload) ...
                last = f"connection error: {format_error(exc, 200)}"
            else:
                if status >= 400:
                    last = f"HTTP {status}: {excerpt(raw)}"
                    if not policy.retryable(status):
                        raise HTTPFailure(
                            secrets.mask(last), attempts=attempt + 1, status=status, final=True
                        )
                    wait = parse_retry_after(retry_after)
                else:
                    try:
                        decoded = json.loads(raw)
                    except (ValueError, RecursionError):
                        last = f"HTTP {status}: response is not JSON: {excerpt(raw)}"
                    else:
                        try:
                            return (decoded if parse is None else parse(decoded)), attempt
                        except BadReply as exc:
                            last = f"HTTP {status}: malformed reply ({exc}): {excerpt(raw)}"
            if attempt < policy.retries:
                await asyncio.sleep(policy.delay(attempt, wait, self._rng))
        raise HTTPFailure(
            secrets.mask(last), attempts=attempts, unreachable=connect_failures == attempts
        )

    async def aclose(self) -> None:
        """Close the pool (from any event loop)."""
        owner, self._owner = self._owner, None
        self._session = self._loop = None
        if owner is not None:
            await _close_owner(owner)


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


async def _close_owner(owner: Any) -> None:
    """Close a session through its :func:`_owned` generator, from whatever loop is running.

    A session whose loop is already closed is marked closed without I/O (aiohttp skips the
    sockets of a closed loop); ``asyncio.run`` will usually have closed it already.
    """
    try:
        await owner.aclose()
    except RuntimeError:  # its event loop is gone (or still busy elsewhere): nothing to await
        pass


def ssl_context() -> ssl.SSLContext:
    """Verify certificates like httpx does: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` if set, else
    certifi's bundle (aiohttp alone would use the system store, missing in slim containers)."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def env_proxy(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) the environment names for ``url``, like httpx's
    ``trust_env``: ``HTTP(S)_PROXY`` / ``ALL_PROXY`` unless ``NO_PROXY`` matches."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None
    return str(proxy), auth
