"""Issue 14: with a backend that returns no source, the teacher names no source."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from searchprime.agent.loop import AgentConfig, run_agent
from searchprime.agent.rollout import attempt_seed
from searchprime.records import SearchHit
from searchprime.world import Teacher
from searchprime.world import phrases as P

_NOUNS = re.compile("|".join(re.escape(n) for n in P.SOURCE_NOUN.values()))


class NoSourceSearch:
    """A real backend behind one that drops ``source`` and ``url`` (as Search-R1's server does)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        rows = await self.inner.search(queries, topk)
        return [[h.model_copy(update={"source": None, "url": None}) for h in row] for row in rows]

    def describe(self) -> dict[str, Any]:
        return {"kind": "no-source", "inner": self.inner.describe()}

    async def aclose(self) -> None:
        return None


def _authority_turns(world, search) -> list:
    tasks = [t for t in world.split("dev") if t.meta["traps"]][:80]
    teacher, cfg = Teacher(world, "authority"), AgentConfig(max_turns=10, topk=3)

    async def main():
        return await asyncio.gather(
            *(run_agent(t, teacher, search, cfg, seed=attempt_seed(t.id, 0)) for t in tasks)
        )

    trajs = asyncio.run(main())
    return [
        turn
        for tr in trajs
        for turn in tr.turns
        if "authority_evaluation" in turn.policy_meta["behaviors"]
    ]


def test_no_source_shown_means_none_named(world, search) -> None:
    shown = _authority_turns(world, search)
    assert shown and any(_NOUNS.search(t.action.think) for t in shown)  # sources are named

    hidden = _authority_turns(world, NoSourceSearch(search))
    assert len(hidden) >= 5
    for turn in hidden:
        assert "[Source:" not in (turn.observation or "")
        think = turn.action.think or ""
        assert "(" not in think and not _NOUNS.search(think), think
        assert re.search(r"reliable|authoritative|credible|trust", think), think
