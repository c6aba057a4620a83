"""The one HTTP transport every searchprime client uses (LLM endpoints, retrievers, web search).

Private: :mod:`searchprime.llm` and :mod:`searchprime.search` build on it, and neither may
import the other, so it sits beside them. :mod:`~searchprime._http.retry` is the policy (what
is retried, the backoff, ``Retry-After``, masked error excerpts);
:mod:`~searchprime._http.transport` the pooled aiohttp client that applies it;
:mod:`~searchprime._http.bridge` runs it for blocking callers.
"""

from __future__ import annotations

from searchprime._http.bridge import SyncBridge
from searchprime._http.retry import (
    RETRY_STATUSES,
    BadReply,
    HTTPFailure,
    RetryPolicy,
    excerpt,
    parse_retry_after,
)
from searchprime._http.transport import Transport, dumps, env_proxy, ssl_context

__all__ = [
    "RETRY_STATUSES",
    "BadReply",
    "HTTPFailure",
    "RetryPolicy",
    "SyncBridge",
    "Transport",
    "dumps",
    "env_proxy",
    "excerpt",
    "parse_retry_after",
    "ssl_context",
]
