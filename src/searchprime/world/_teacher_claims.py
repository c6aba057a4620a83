"""What a scripted teacher reads and says: claims on result pages, detours, one response.

:func:`read_claims` turns search results into the :class:`Claim` s their pages state for one
relation; :func:`tiers_disagree` tells when visible sources disagree; a :class:`Step` is one
response of :class:`~searchprime.world._teacher_run.Run`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from searchprime.records import SearchHit
from searchprime.world import phrases as P
from searchprime.world.load import Page, World

__all__ = ["Claim", "Detour", "Step", "cap", "name_tokens", "read_claims", "tiers_disagree"]

_WORD = re.compile(r"\w+")


def name_tokens(name: str) -> set[str]:
    """The words of a name (lower case, longer than one character)."""
    return {w for w in _WORD.findall(name.lower()) if len(w) > 1}


def cap(text: str) -> str:
    """``text`` with its first character upper-cased."""
    return text[:1].upper() + text[1:]


@dataclass
class Claim:
    """A value a result page states for the current hop's relation."""

    rank: int
    page: Page
    subj: str
    value: str
    shown: str | None = None  # the source the result showed (None: the backend gave none)

    @property
    def source_noun(self) -> str | None:
        """How the thinking names the shown source; never the world's hidden one."""
        return P.SOURCE_NOUN.get(self.shown, self.shown) if self.shown else None


@dataclass
class Step:
    """One response: a thought and one action, the behaviors it shows, the policy move."""

    think: str
    kind: Literal["search", "answer"]
    content: str
    behaviors: list[str]
    move: str


@dataclass(frozen=True)
class Detour:
    """The teacher followed a near-duplicate entity at ``hop`` instead of the true one."""

    hop: int
    followed: str
    true: str


def read_claims(world: World, hits: Sequence[SearchHit], relation: str) -> list[Claim]:
    """Claims of ``relation`` in the results, in rank order."""
    out = []
    for i, hit in enumerate(hits, start=1):
        page = world.page_for(hit.title, hit.text)
        if page is None:
            continue
        for r, s, o in page.claims:
            if r == relation:
                out.append(Claim(i, page, s, o, shown=hit.source))
    return out


def tiers_disagree(claims: list[Claim]) -> bool:
    """Visible conflict: two values, the better-sourced one strictly more authoritative."""
    if len({c.value for c in claims}) < 2:
        return False
    best = max(claims, key=lambda c: (c.page.authority, -c.rank))
    return any(c.value != best.value and c.page.authority < best.page.authority for c in claims)
