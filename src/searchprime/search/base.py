"""The search interface the agent loop uses; every backend (BM25, dense, HTTP, web) has it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from searchprime.records import SearchHit


@runtime_checkable
class SearchBackend(Protocol):
    """Batched top-k search. Safe to call from many asyncio tasks at once."""

    name: str

    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        """Return the top ``topk`` hits for each query, in query order."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings to record in each trajectory."""
        ...

    async def aclose(self) -> None:
        """Release resources."""
        ...
