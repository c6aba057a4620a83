"""The action-grounded sandbox annotator (``grounded:v1``): behaviors from moves, not words.

It reads each turn's action (query or answer) and the pages its hits came from -- resolved
to the world's ground truth (which entity a page is about, which facts it states, its
source's authority) -- and the task's answer chain. It never reads the thinking, so a
model that says the cue phrases without making the moves gets *no*, and one that makes them
silently gets *yes*. A query *targets a need*: the entity it names (an alias resolves to its
entity; the longest name wins, so a near-duplicate is told apart) and the relation its words
ask for (or the only one that entity's kind has). A need is *found* when a hit states it.

* information_verification -- a further search, worded differently, for a need whose value the
  agent's own search for it (or for the entity it shadows) already returned (repeating the
  same query returns the same pages: it checks nothing);
* authority_evaluation -- once hits state conflicting values of one fact on pages of
  different authority, the next action that commits to one of them (a query about it, the
  answer) takes the higher-authority value;
* adaptive_search -- after a search whose hits do not state its need, a different query for
  the same need;
* error_recovery -- a search that returns to the task's answer chain after searching an
  entity off it, or a new search for a need whose last hits were all about its near-duplicate.

Moves the teachers log that leave no action behind are out of reach: reading two agreeing
pages in one result list (``verify_cross``) and weighing that picks the lower-authority value
(``weigh_slip``, the teacher's own mistake) are labelled *no*.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from searchprime.records import (
    BEHAVIORS,
    BehaviorEvidence,
    BehaviorLabels,
    SearchHit,
    Trajectory,
    Turn,
)
from searchprime.search.format import parse_hits
from searchprime.world.schema import RELATIONS

if TYPE_CHECKING:
    from searchprime.world.load import Page, World

__all__ = ["ANNOTATOR", "GroundedAnnotator", "annotate_grounded"]

ANNOTATOR = "grounded:v1"

_WORD = re.compile(r"\w+")
_INFO = re.compile(r"<information>\s*(.*?)\s*</information>", re.DOTALL)
_NAME_END = re.compile(r"[\w-]")  # a name must not run on into a longer word ("Last-Syl")

#: Words of a query that ask for a relation (matched outside the entity's own name).
_REL_WORDS: dict[str, frozenset[str]] = {
    "born_in": frozenset("born birth birthplace native hometown grew".split()),
    "headquartered_in": frozenset(
        "headquarters headquartered head office offices based located city".split()
    ),
    "founded_by": frozenset("founded founder founders established started origins".split()),
    "written_by": frozenset("wrote written author writer novel book".split()),
    "located_in": frozenset("country nation region".split()),
}
_REL_OF_KIND: dict[str, tuple[str, ...]] = {}
for _r in RELATIONS.values():
    _REL_OF_KIND.setdefault(_r.subject, ())
    _REL_OF_KIND[_r.subject] += (_r.name,)


@dataclass(frozen=True)
class Claim:
    """One fact a hit states: ``relation(subject) = value`` on a page of some authority."""

    turn: int
    rank: int
    relation: str
    subject: str
    value: str
    authority: int


@dataclass
class Move:
    """One action of the trajectory, resolved against the world."""

    turn: int
    kind: str  # search | answer | other
    text: str
    entity: str | None = None  # the entity a query targets / an answer names
    relation: str | None = None
    claims: list[Claim] = field(default_factory=list)

    @property
    def words(self) -> frozenset[str]:
        return frozenset(w.lower() for w in _WORD.findall(self.text))

    def states(self, entity: str, relation: str | None) -> list[Claim]:
        return [
            c
            for c in self.claims
            if c.subject == entity and (relation is None or c.relation == relation)
        ]


class _Resolver:
    """Finds entity names (and aliases) in text and pages behind hits."""

    def __init__(self, world: World):
        self.world = world
        self._first: dict[str, list[tuple[str, str]]] = {}
        for ent in world.entities.values():
            for name in (ent.name, ent.alias):
                if name:
                    low = " ".join(name.split()).lower()
                    first = _WORD.match(low)
                    if first:
                        self._first.setdefault(first.group(), []).append((low, ent.id))

    def entities_in(self, text: str) -> list[str]:
        """Entity ids named in ``text``, left to right, longest name first at each place."""
        low = " ".join(text.split()).lower()
        out: list[str] = []
        pos = 0
        for m in _WORD.finditer(low):
            if m.start() < pos:
                continue
            best: tuple[str, str] | None = None
            for name, eid in self._first.get(m.group(), ()):
                end = m.start() + len(name)
                if low.startswith(name, m.start()) and not _NAME_END.match(low, end):
                    if best is None or len(name) > len(best[0]):
                        best = (name, eid)
            if best is not None:
                out.append(best[1])
                pos = m.start() + len(best[0])
        return out

    def relation(self, query: str, entity: str) -> str | None:
        """The relation a query about ``entity`` asks for; None when it cannot tell."""
        options = _REL_OF_KIND.get(self.world.entities[entity].kind, ())
        if len(options) == 1:
            return options[0]
        ent = self.world.entities[entity]
        rest = " ".join(query.split()).lower()
        for name in (ent.name, ent.alias):
            if name:
                rest = rest.replace(" ".join(name.split()).lower(), " ")
        words = {w for w in _WORD.findall(rest)}
        asked = [r for r in options if words & _REL_WORDS[r]]
        return asked[0] if len(asked) == 1 else None

    def page(self, hit: SearchHit) -> Page | None:
        page = self.world.pages.get(hit.doc_id)
        if page is not None and " ".join(page.text.split()) == " ".join(hit.text.split()):
            return page
        return self.world.page_for(hit.title, hit.text)


def _hits(turn: Turn) -> list[SearchHit]:
    if turn.hits:
        return turn.hits
    if turn.observation:
        block = _INFO.search(turn.observation)
        return parse_hits(block.group(1) if block else turn.observation)
    return []


def _moves(traj: Trajectory, res: _Resolver) -> list[Move]:
    moves = []
    for turn in traj.turns:
        kind = turn.action.kind if turn.action.kind in ("search", "answer") else "other"
        move = Move(turn.index, kind, turn.action.content)
        named = res.entities_in(move.text) if kind != "other" else []
        if named:
            move.entity = named[0]
            if kind == "search":
                move.relation = res.relation(move.text, move.entity)
        if kind == "search":
            for rank, hit in enumerate(_hits(turn), start=1):
                page = res.page(hit)
                if page is None:
                    continue
                for r, s, o in page.claims:
                    move.claims.append(Claim(turn.index, rank, r, s, o, page.authority))
        moves.append(move)
    return moves


class _Found(dict[str, list[tuple[int, str]]]):
    """Behavior -> [(turn, why)]."""

    def add(self, name: str, turn: int, why: str) -> None:
        self.setdefault(name, []).append((turn, why))


def _same_need(world: World, a: Move, b: Move) -> bool:
    """``b`` asks for what ``a`` asked for (or for the near-duplicate ``a``'s entity has)."""
    if a.entity is None or b.entity is None:
        return False
    if a.relation and b.relation and a.relation != b.relation:
        return False
    if a.entity == b.entity:
        return True
    ea, eb = world.entities[a.entity], world.entities[b.entity]
    return ea.twin == eb.id or eb.twin == ea.id


def _twins(world: World, eid: str) -> set[str]:
    ent = world.entities[eid]
    return {t for t in (ent.twin, ent.twin_of) if t}


def _searches(moves: list[Move]) -> Iterator[tuple[Move | None, Move]]:
    prev = None
    for m in moves:
        if m.kind == "search":
            yield prev, m
            prev = m


def _wording(query: str) -> str:
    """A query as the search backend sees it: case, punctuation and spacing do not count."""
    return " ".join(re.findall(r"\w+", query.lower()))


def _verification(world: World, moves: list[Move], found: _Found, skip: set[int]) -> bool:
    offered = False
    streak: list[Move] = []  # consecutive searches for one need
    for prev, cur in _searches(moves):
        if prev is None or not _same_need(world, prev, cur):
            streak = [cur]
        else:
            streak.append(cur)
            stated = [c for m in streak[:-1] for c in m.states(cur.entity, cur.relation)]
            repeat = _wording(cur.text) in {_wording(m.text) for m in streak[:-1]}
            if stated and not repeat and cur.turn not in skip:
                first = stated[0]
                found.add(
                    "information_verification",
                    cur.turn,
                    f"turn {cur.turn}: searches {cur.text!r} again for "
                    f"{world.name(cur.entity)} ({first.relation}) after turn {first.turn} "
                    f"Doc {first.rank} gave {world.name(first.value)}",
                )
        offered = offered or bool(cur.entity and cur.states(cur.entity, cur.relation))
    return offered


def _adaptive(world: World, moves: list[Move], found: _Found, found_rec: set[int]) -> bool:
    offered = False
    for prev, cur in _searches(moves):
        if prev is None or prev.entity is None:
            continue
        missed = not prev.states(prev.entity, prev.relation)
        offered = offered or missed
        if not missed or prev.entity != cur.entity or not _same_need(world, prev, cur):
            continue
        if cur.words == prev.words or cur.turn in found_rec:
            continue
        found.add(
            "adaptive_search",
            cur.turn,
            f"turn {cur.turn}: after turn {prev.turn} {prev.text!r} missed the "
            f"{prev.relation or 'fact'} of {world.name(prev.entity)}, searches {cur.text!r}",
        )
    return offered


def _recovery(world: World, moves: list[Move], chain: set[str] | None, found: _Found) -> bool:
    offered = False
    off: Move | None = None  # the first search off the answer chain since the last on it
    detours: dict[str, str] = {}  # entity -> the near-duplicate whose value the agent followed
    done: list[Move] = []
    for prev, cur in _searches(moves):
        if cur.entity is None:
            done.append(cur)
            continue
        why = None
        if chain is not None and cur.entity not in chain:
            off = off or cur
        elif chain is not None and off is not None:
            why = f"leaves {world.name(off.entity)} (off the answer chain since turn {off.turn})"
            off = None
        if cur.entity in detours:
            twin = detours.pop(cur.entity)
            why = why or f"leaves the value it took from near-duplicate {world.name(twin)}"
        if why is None and prev is not None and _same_need(world, prev, cur):
            twins = _twins(world, cur.entity)
            stated = {c.subject for c in prev.claims if c.relation == (cur.relation or c.relation)}
            if stated & twins and cur.entity not in stated:
                offered = True
                twin = world.name(next(iter(stated & twins)))
                why = f"turn {prev.turn} hits stated only near-duplicate {twin}'s fact"
        if why is not None:
            found.add(
                "error_recovery",
                cur.turn,
                f"turn {cur.turn}: {why} for {world.name(cur.entity)}: {cur.text!r}",
            )
        for m in done:  # did this search follow a value read off a near-duplicate's page?
            for c in m.claims:
                if (
                    c.value != cur.entity
                    or not m.entity
                    or c.subject not in _twins(world, m.entity)
                ):
                    continue
                if not any(o.value == cur.entity for o in m.states(m.entity, c.relation)):
                    detours[m.entity] = c.subject
        offered = offered or off is not None or bool(detours)
        done.append(cur)
    return offered


def _commits(move: Move, world: World, res: _Resolver) -> set[str]:
    """Entities an action commits to: a query's target, every entity an answer names."""
    if move.kind == "search":
        return {move.entity} if move.entity else set()
    if move.kind == "answer":
        ent = world.entity_by_name(move.text)
        return {ent.id} if ent else set(res.entities_in(move.text))
    return set()


def _tiers(claims: list[Claim]) -> dict[str, int]:
    """Value -> the highest authority of a page stating it."""
    tiers: dict[str, int] = {}
    for c in claims:
        tiers[c.value] = max(tiers.get(c.value, 0), c.authority)
    return tiers


def _misleads(claims: list[Claim]) -> str | None:
    """The one most authoritative value when the first value read is less authoritative."""
    tiers = _tiers(claims)
    top = max(tiers.values())
    best = [v for v, a in tiers.items() if a == top]
    first = min(claims, key=lambda c: (c.turn, c.rank)).value
    return best[0] if len(best) == 1 and first != best[0] else None


def _authority(world: World, moves: list[Move], res: _Resolver, found: _Found) -> bool:
    offered = False
    # Only a conflict whose first-read value (what an agent taking results in order would
    # keep) is the less authoritative one can show weighing: following a top-ranked
    # authoritative page is what an agent that never weighs does too.
    seen: dict[tuple[str, str], list[Claim]] = {}
    open_: set[tuple[str, str]] = set()  # facts with a misleading conflict, not yet acted on
    for move in moves:
        commits = _commits(move, world, res)
        for key in sorted(open_):
            tiers = _tiers(seen[key])
            if not commits & set(tiers):
                if move.entity != key[0]:  # moved on to another need: the conflict is left
                    open_.discard(key)
                continue
            open_.discard(key)
            best = _misleads(seen[key])
            if best in commits:
                low = min(tiers, key=lambda v: tiers[v])
                found.add(
                    "authority_evaluation",
                    move.turn,
                    f"turn {move.turn}: {move.kind} {move.text!r} takes {world.name(best)} "
                    f"(authority {tiers[best]}) over the first-read {world.name(low)} "
                    f"(authority {tiers[low]}) for the {key[1]} of {world.name(key[0])}",
                )
        for c in move.claims:
            seen.setdefault((c.subject, c.relation), []).append(c)
        for key in {(c.subject, c.relation) for c in move.claims} - open_:
            if _misleads(seen[key]) is not None:
                open_.add(key)
                offered = True
    return offered


def annotate_grounded(
    traj: Trajectory, world: World, res: _Resolver | None = None
) -> BehaviorLabels:
    """Label ``traj`` from its actions, hits and the world (never its thinking)."""
    res = res or _Resolver(world)
    moves = _moves(traj, res)
    task = world.task(traj.task_id) or world.task_by_question(traj.question)
    chain = set(task.meta.get("gold_entities", [])) if task is not None else None
    found = _Found()
    offered: dict[str, bool] = {}
    offered["error_recovery"] = _recovery(world, moves, chain, found)
    rec = {t for t, _ in found.get("error_recovery", [])}
    offered["information_verification"] = _verification(world, moves, found, rec)
    offered["adaptive_search"] = _adaptive(world, moves, found, rec)
    offered["authority_evaluation"] = _authority(world, moves, res, found)
    behaviors = {}
    for name in BEHAVIORS:
        hits = found.get(name, [])
        if hits:
            ev = BehaviorEvidence(
                present=True,
                turns=sorted({t for t, _ in hits}),
                rationale="; ".join(w for _, w in hits[:3]),
            )
        elif name == "error_recovery" and chain is None and not offered[name]:
            ev = BehaviorEvidence(present=None, rationale="task not in the world: no answer chain")
        else:
            why = "no move shows it" if offered[name] else "never called for by the moves"
            ev = BehaviorEvidence(present=False, rationale=why)
        behaviors[name] = ev
    on = [b for b in BEHAVIORS if offered[b]]
    notes = [f"offered: {', '.join(on) if on else 'none'}"]
    return BehaviorLabels(annotator=ANNOTATOR, behaviors=behaviors, notes=notes)


class GroundedAnnotator:
    """:func:`annotate_grounded` with a sandbox world (the :class:`Annotator` protocol)."""

    def __init__(self, world_dir: str | Path):
        from searchprime.world import load_world

        self.world = load_world(world_dir)
        self._res = _Resolver(self.world)
        self.name = "grounded"

    async def annotate(self, traj: Trajectory) -> BehaviorLabels:
        return annotate_grounded(traj, self.world, self._res)
