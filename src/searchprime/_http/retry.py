"""The retry policy every HTTP caller shares: what is worth another try, and how long to wait.

Worth retrying: HTTP 408/409/425/429 and every 5xx, timeouts, connection errors, a ``200``
whose body is not JSON, and a ``200`` the caller's parser rejects with :class:`BadReply`. The
wait before retry ``n`` (0-based) is the server's ``Retry-After`` when it names one, else full
jitter ``uniform(0, min(max, base * 2**n))``; both are capped at ``backoff_max_s``.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from datetime import timezone

from searchprime import secrets
from searchprime.records.sanitize import one_line

__all__ = [
    "RETRY_STATUSES",
    "BadReply",
    "HTTPFailure",
    "RetryPolicy",
    "excerpt",
    "parse_retry_after",
]

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
"""HTTP statuses retried (plus every other 5xx)."""

EXCERPT_CHARS = 300
_EXCERPT_SCAN = 65536  # bytes of an error body masked before the excerpt is cut from them


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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one request is retried.

    >>> RetryPolicy(retries=2).retryable(503), RetryPolicy().retryable(404)
    (True, False)
    """

    retries: int = 3
    """Retries after the first attempt."""
    backoff_base_s: float = 0.5
    """The first retry waits up to this long; each later one up to twice as long."""
    backoff_max_s: float = 30.0
    """The longest wait, ``Retry-After`` included."""
    statuses: frozenset[int] = RETRY_STATUSES
    """Statuses retried besides every 5xx."""

    def retryable(self, status: int) -> bool:
        """Whether a reply with ``status`` is worth another attempt."""
        return status in self.statuses or status >= 500

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based)."""
        cap = max(self.backoff_max_s, 0.0)
        if retry_after is not None:
            return min(retry_after, cap)
        return rng.uniform(0.0, min(cap, self.backoff_base_s * (2**attempt)))


class BadReply(Exception):
    """A ``200`` reply the caller cannot use (the message says why); retried like a 5xx."""


class HTTPFailure(Exception):
    """A request failed for good; callers turn it into their own error.

    ``reason`` is one line with secrets masked (``HTTP 500: <body excerpt>``, ``cannot
    connect: ...``, ``timed out after 5 s``). ``final`` is set when the reply was not worth
    retrying (a 4xx); ``unreachable`` when no attempt could connect at all.
    """

    def __init__(
        self,
        reason: str,
        *,
        attempts: int,
        status: int | None = None,
        final: bool = False,
        unreachable: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.status = status
        self.final = final
        self.unreachable = unreachable

    def summary(self, who: str, unit: str = "attempts") -> str:
        """One line for the caller's error: ``<who> failed: <reason>`` for a reply not worth
        retrying, else ``<who> failed after <n> <unit>: <reason>``."""
        if self.final:
            return f"{who} failed: {self.reason}"
        return f"{who} failed after {self.attempts} {unit}: {self.reason}"


def excerpt(raw: bytes, limit: int = EXCERPT_CHARS) -> str:
    """The start of a reply body on one line, secrets masked BEFORE it is cut (a key that
    straddles the cut would otherwise leave its head behind)."""
    text = secrets.mask(raw[:_EXCERPT_SCAN].decode("utf-8", errors="replace"))
    return one_line(text, limit)
