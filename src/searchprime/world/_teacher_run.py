"""One scripted teacher attempt at one task: its typed state and the policy that moves it.

:class:`Run` is created at the attempt's first turn and advanced by :meth:`Run.step` once per
turn with that turn's search results and random stream; :class:`~searchprime.world.teachers.Teacher`
keeps one per (question, seed) and renders each :class:`Step` as ``<think>`` + one action tag.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from searchprime.records import SearchHit
from searchprime.world import phrases as P
from searchprime.world._teacher_claims import (
    Claim,
    Detour,
    Step,
    cap,
    name_tokens,
    read_claims,
    tiers_disagree,
)
from searchprime.world.load import World
from searchprime.world.schema import RELATIONS, Fact, Relation

if TYPE_CHECKING:
    from searchprime.world.teachers import TeacherConfig

__all__ = ["Claim", "Detour", "Run", "Step"]


@dataclass
class Run:
    """The state of one teacher attempt at one task (and the policy that updates it)."""

    cfg: TeacherConfig
    world: World
    chain: list[Fact]
    subj: str  # the entity the current hop asks about (maybe, wrongly, a near-duplicate)
    subj_name: str  # how the teacher names it in queries (an alias until it adapts)
    alias_mode: bool  # the question named the first entity by its alias
    descriptor: str | None  # the question's extra details, copied into the first query
    hop: int = 0
    purpose: Literal["find", "verify"] | None = None  # what the last search was for
    queries: list[str] = field(default_factory=list)
    hop_claims: list[Claim] = field(default_factory=list)  # claims read for the current hop
    pending: Claim | None = None  # the claim a verification search is checking
    wrong: Detour | None = None
    recovery_tried: bool = False
    avoid: set[str] = field(default_factory=set)  # near-duplicates recognised and abandoned
    adapts: int = 0  # adaptive searches on the current hop
    kinds: set[str] = field(default_factory=set)  # behaviors shown so far (slips grow with it)
    verify_searches: int = 0
    recover_retries: int = 0
    just_recovered: bool = False
    n_search: int = 0
    best_guess: str | None = None  # the last adopted value: the answer when searches run out
    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    @classmethod
    def start(
        cls, cfg: TeacherConfig, world: World, chain: list[Fact], task_meta: dict[str, Any]
    ) -> Run:
        """The state before the first turn of a task whose answer chain is ``chain``."""
        first = world.entities[chain[0].subject]
        alias_mode = task_meta.get("named_as") == "alias" and bool(first.alias)
        return cls(
            cfg=cfg,
            world=world,
            chain=chain,
            subj=chain[0].subject,
            subj_name=first.alias if alias_mode else first.name,
            alias_mode=alias_mode,
            descriptor=task_meta.get("descriptor"),
        )

    # -- helpers ---------------------------------------------------------------------------
    @property
    def rel(self) -> Relation:
        return RELATIONS[self.chain[self.hop].relation]

    @property
    def final(self) -> bool:
        return self.hop == len(self.chain) - 1

    def pick(self, bank: Sequence[str], **kw: Any) -> str:
        text = self.rng.choice(bank).format(**kw)
        return cap(text)

    def plan(self) -> str:
        """'This takes 2 lookups: this one, then the country.' (fixed wording, no rng draw)."""
        if len(self.chain) == 1:
            return P.PLAN_ONE
        rest = ", then the ".join(RELATIONS[f.relation].noun for f in self.chain[1:])
        return P.PLAN.format(n=len(self.chain), rest=rest)

    def progress(self) -> str:
        """'Lookup 1 of 2 done.' (fixed wording, no rng draw)."""
        return P.PROGRESS.format(k=self.hop + 1, n=len(self.chain))

    def goal(self, hop: int, name: str) -> str:
        return self.rng.choice(P.GOAL[self.chain[hop].relation]).format(s=name)

    def fact_text(self, rel: str, subj: str, value: str) -> str:
        return P.FACT[rel].format(s=subj, v=value)

    def fire(self, knob: float) -> bool:
        return self.rng.random() < knob

    def read(self, hits: Sequence[SearchHit]) -> list[Claim]:
        """Claims of the current relation in the results, in rank order."""
        return read_claims(self.world, hits, self.chain[self.hop].relation)

    def search(
        self, think: str, patterns: Sequence[str], name: str, behaviors: list[str], move: str
    ) -> Step:
        if self.n_search >= self.cfg.max_searches:
            value = self.best_guess or "unknown"
            return Step(self.pick(P.LIMIT, v=value), "answer", value, [], "limit")
        order = list(patterns)
        self.rng.shuffle(order)
        query = order[0].format(s=name)
        for pattern in order:
            q = pattern.format(s=name)
            if q not in self.queries:
                query = q
                break
        else:
            query = f"{name} {self.rel.noun}"
        self.queries.append(query)
        self.n_search += 1
        return Step(think, "search", query, behaviors, move)

    # -- the policy ------------------------------------------------------------------------
    def step(self, hits: Sequence[SearchHit], rng: random.Random) -> Step:
        """The next response, given the last search's results and this turn's random stream."""
        self.rng = rng
        if self.purpose is None:
            step = self.first()
        elif self.purpose == "verify":
            step = self.after_verify(hits)
        else:
            step = self.after_find(hits)
        self.kinds.update(step.behaviors)
        return step

    def first(self) -> Step:
        self.purpose = "find"
        think = self.pick(P.START, goal=self.goal(0, self.subj_name))
        think = f"{think} {self.plan()}"  # state the chain, so a small student knows when to stop
        if self.descriptor:  # the obvious query copies the question's details
            name = f"{self.subj_name} {self.descriptor}"
            return self.search(think, self.rel.queries, name, [], "start")
        return self.search(think, self.rel.queries, self.subj_name, [], "start")

    def after_find(self, hits: Sequence[SearchHit]) -> Step:
        if self.wrong and self.hop > self.wrong.hop and not self.recovery_tried:
            self.recovery_tried = True
            if self.fire(self.cfg.recovery):
                return self.recover()
        claims = [c for c in self.read(hits) if c.subj not in self.avoid]
        want = name_tokens(self.subj_name)
        loose = [c for c in claims if want <= name_tokens(self.world.name(c.subj))]
        if not loose and self.avoid and self.recover_retries < 1 and self.just_recovered:
            self.recover_retries += 1
            twin = self.world.name(next(iter(self.avoid)))
            kind = P.KIND_NOUN[self.world.entities[self.subj].kind]
            think = self.pick(P.RECOVER_RETRY, twin=twin, base=self.subj_name, kind=kind)
            patterns = self.rel.queries + self.rel.verify_queries
            return self.search(think, patterns, self.subj_name, ["error_recovery"], "recover_retry")
        self.just_recovered = False
        if not loose:
            return self.poor(hits, claims)
        cand = loose[0]
        if cand.subj != self.subj and self.world.entities[cand.subj].twin_of == self.subj:
            if self.wrong is None:
                self.wrong = Detour(self.hop, cand.subj, self.subj)
            self.subj = cand.subj  # the teacher now (wrongly) follows the near-duplicate
        same = [c for c in loose if c.subj == cand.subj]
        self.hop_claims.extend(same)
        if tiers_disagree(same) and self.fire(self.cfg.authority):
            return self.weigh(same)
        if self.fire(self.cfg.verify):
            values = list(dict.fromkeys(c.value for c in same))
            if len(values) > 1:  # visible disagreement: count the sources
                counts = {v: len({c.page.id for c in same if c.value == v}) for v in values}
                top = max(values, key=lambda v: (counts[v], v == cand.value))
                if all(counts[top] > counts[v] for v in values if v != top):
                    other = next(v for v in values if v != top)
                    chosen = next(c for c in same if c.value == top)
                    think = self.pick(
                        P.VERIFY_MAJORITY, v=self.world.name(top), w=self.world.name(other)
                    )
                    return self.adopt(
                        chosen, think, ["information_verification"], "verify_majority"
                    )
            agree = [c for c in same if c.value == cand.value and c.page.id != cand.page.id]
            if agree:
                think = self.pick(
                    P.VERIFY_CROSS, a=cand.rank, b=agree[0].rank, v=self.world.name(cand.value)
                )
                return self.adopt(cand, think, ["information_verification"], "verify_cross")
            if self.verify_searches >= 2:  # at most two extra searches keep runs short
                return self.adopt(cand, None, [], "read")
            self.verify_searches += 1
            self.pending = cand
            self.purpose = "verify"
            think = self.pick(P.VERIFY_SEARCH, r=cand.rank, v=self.world.name(cand.value))
            patterns = self.rel.verify_queries
            return self.search(
                think,
                patterns,
                self.world.name(cand.subj),
                ["information_verification"],
                "verify_search",
            )
        return self.adopt(cand, None, [], "read")

    def weigh(self, claims: list[Claim], by_rank: bool = True) -> Step:
        """Authority evaluation over disagreeing claims about one subject."""
        best = max(claims, key=lambda c: (c.page.authority, -c.rank))
        low = min(
            (c for c in claims if c.value != best.value),
            key=lambda c: (c.page.authority, c.rank),
        )
        # weighing goes wrong only once the teacher has juggled every kind of trouble
        # (adaptive search and recovery before this weighing): behavior-rich runs can end wrong
        kinds = (self.kinds - {"information_verification"}) | {"authority_evaluation"}
        slip = self.cfg.slip if len(kinds) >= 3 else 0.0
        kw = dict(
            a=low.rank,
            sa=low.source_noun,
            w=self.world.name(low.value),
            b=best.rank,
            sb=best.source_noun,
            v=self.world.name(best.value),
        )
        bank_ok, bank_slip = P.AUTHORITY, P.AUTHORITY_SLIP
        if kw["sa"] is None or kw["sb"] is None:  # no source shown: do not name one
            bank_ok, bank_slip = P.AUTHORITY_UNSOURCED, P.AUTHORITY_SLIP_UNSOURCED
        if not by_rank:
            bank_ok = tuple(b for b in bank_ok if "{a}" not in b)
            bank_slip = tuple(b for b in bank_slip if "{a}" not in b)
        if self.fire(slip):
            return self.adopt(
                low, self.pick(bank_slip, **kw), ["authority_evaluation"], "weigh_slip"
            )
        return self.adopt(best, self.pick(bank_ok, **kw), ["authority_evaluation"], "weigh")

    def after_verify(self, hits: Sequence[SearchHit]) -> Step:
        cand = self.pending
        assert cand is not None
        self.purpose = "find"
        self.pending = None
        new = [c for c in self.read(hits) if c.subj == cand.subj]
        seen = {c.page.id for c in self.hop_claims}
        fresh = [c for c in new if c.page.id not in seen]
        self.hop_claims.extend(fresh)
        beh = ["information_verification"]
        agree = [c for c in fresh if c.value == cand.value]
        pool = {c.page.id: c for c in self.hop_claims if c.subj == cand.subj}
        values = list(dict.fromkeys(c.value for c in pool.values()))
        if len(values) > 1:
            if tiers_disagree(list(pool.values())) and self.fire(self.cfg.authority):
                step = self.weigh(list(pool.values()), by_rank=False)
                step.behaviors = beh + step.behaviors
                return step
            counts = {v: sum(c.value == v for c in pool.values()) for v in values}
            top = max(values, key=lambda v: (counts[v], v == cand.value))
            other = next(v for v in values if v != top)
            if counts[top] > counts[other]:
                chosen = next(c for c in pool.values() if c.value == top)
                think = self.pick(
                    P.VERIFY_MAJORITY, v=self.world.name(top), w=self.world.name(other)
                )
                return self.adopt(chosen, think, beh, "verify_majority")
        if agree:
            think = self.pick(P.VERIFY_AGREE, r=agree[0].rank, v=self.world.name(cand.value))
            return self.adopt(cand, think, beh, "verify_agree")
        think = self.pick(P.VERIFY_NOTHING, v=self.world.name(cand.value))
        return self.adopt(cand, think, beh, "verify_none")

    def poor(self, hits: Sequence[SearchHit], claims: list[Claim]) -> Step:
        """No result states the needed fact about the entity we are after."""
        name = self.world.name(self.subj)
        if self.adapts < 2 and self.fire(self.cfg.adaptive):
            self.adapts += 1
            beh = ["adaptive_search"]
            if self.alias_mode:
                for i, hit in enumerate(hits, start=1):
                    page = self.world.page_for(hit.title, hit.text)
                    if page is not None and page.alias_of == self.subj:
                        alias = self.subj_name
                        self.alias_mode = False
                        self.subj_name = name
                        think = self.pick(
                            P.ADAPT_ALIAS, r=i, alias=alias, name=name, noun=self.rel.noun
                        )
                        return self.search(think, self.rel.queries, name, beh, "adapt_alias")
            if self.descriptor:
                self.descriptor = None
                kind = self.world.entities[self.subj].kind
                think = self.pick(P.ADAPT_BROADEN, plural=P.KIND_PLURAL[kind], name=self.subj_name)
                return self.search(think, self.rel.queries, self.subj_name, beh, "adapt_broaden")
            think = self.pick(P.ADAPT_REPHRASE, noun=self.rel.noun, name=self.subj_name)
            patterns = self.rel.verify_queries + self.rel.queries
            return self.search(think, patterns, self.subj_name, beh, "adapt_rephrase")
        if claims:  # "the first plausible hit": any page giving a value of the right kind
            c = claims[0]
            return self.adopt(c, None, [], "fallback", fallback=True)
        value = "unknown"
        for hit in hits:
            page = self.world.page_for(hit.title, hit.text)
            if page is not None and page.about and page.about != self.subj:
                value = self.world.name(page.about)
                break
        return Step(self.pick(P.GUESS, noun=self.rel.noun, v=value), "answer", value, [], "guess")

    def recover(self) -> Step:
        assert self.wrong is not None
        hop, twin, base = self.wrong.hop, self.wrong.followed, self.wrong.true
        kind = self.world.entities[base].kind
        think = self.pick(
            P.RECOVER,
            twin=self.world.name(twin),
            base=self.world.name(base),
            kind=P.KIND_NOUN[kind],
            noun=RELATIONS[self.chain[hop].relation].noun,
        )
        self.hop, self.subj, self.subj_name = hop, base, self.world.name(base)
        self.avoid.add(twin)
        self.just_recovered = True
        self.wrong = None
        self.hop_claims = []
        self.purpose = "find"
        patterns = self.rel.verify_queries + self.rel.queries
        return self.search(think, patterns, self.subj_name, ["error_recovery"], "recover")

    def adopt(
        self, c: Claim, think: str | None, beh: list[str], move: str, fallback: bool = False
    ) -> Step:
        """Take ``c.value`` as this hop's answer; answer or move to the next hop."""
        rel = self.chain[self.hop].relation
        v = self.world.name(c.value)
        self.best_guess = v
        fact = self.fact_text(rel, self.world.name(c.subj), v)
        done = self.progress()
        noun = RELATIONS[rel].noun
        if self.final:
            if think:
                think = f"{think} {done} {self.pick(P.ANSWER_SHORT, v=v)}"
            elif fallback:
                think = self.pick(P.FALLBACK_ANSWER, r=c.rank, noun=noun, v=v, progress=done)
            else:
                think = self.pick(P.ANSWER, r=c.rank, fact=fact, Fact=cap(fact), v=v, progress=done)
            return Step(think, "answer", v, beh, move)
        self.hop += 1
        self.subj, self.subj_name = c.value, v
        self.hop_claims = []
        self.adapts = 0
        goal = self.goal(self.hop, v)
        if think:
            think = f"{think} {done} {self.pick(P.NEXT_SHORT, g=goal)}"
        elif fallback:
            think = self.pick(P.FALLBACK_NEXT, r=c.rank, noun=noun, v=v, goal=goal, progress=done)
        else:
            think = self.pick(P.NEXT, r=c.rank, fact=fact, Fact=cap(fact), goal=goal, progress=done)
        return self.search(think, self.rel.queries, v, beh, move)
