"""Scripted teachers: deterministic policies with one knob per behavior.

A :class:`Teacher` implements the LLM protocol of :mod:`searchprime.llm.base`, so it plugs
into the agent loop exactly where a model does. It finds the question in the first user
message (``^Question: (.*)$``), reads search results back from ``<information>`` blocks with
:func:`searchprime.search.format.parse_hits`, and "understands" a page by looking it up in
the world (title + text), which tells it the claims the page states. Each response is a
short ``<think>`` (1-3 sentences, paraphrased) and exactly one action tag.

Behaviors are shown with a per-behavior probability when the situation calls for it:

* verification -- before relying on a fact: cross-check two agreeing pages, or search again;
* authority -- when visible sources disagree: keep the value of the most authoritative one;
* adaptive -- after a poor result (alias, over-specific query): rephrase or broaden;
* recovery -- after following a near-duplicate entity: say so and go back.

``slip`` makes weighing go wrong (more often the more the teacher already juggled), so
behavior-rich trajectories can still end wrong. Every turn reports
``Completion.meta = {"behaviors": [...], "move": ..., "hop": ...}``; the loop copies it into
``Turn.policy_meta`` (ground truth for judging annotators).

Randomness comes only from ``sha256(question, seed, turn)``, with ``seed`` taken from
``SamplingParams.seed`` (the loop's per-attempt seed), so a teacher is deterministic given
(task, attempt seed) and safe to call from many asyncio tasks at once.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime.errors import ConfigError
from searchprime.llm.base import Completion, SamplingParams
from searchprime.records import Message
from searchprime.search.format import parse_hits
from searchprime.world import phrases as P
from searchprime.world.load import Page, World
from searchprime.world.schema import RELATIONS, Fact

__all__ = ["TEACHER_PRESETS", "Teacher", "TeacherConfig", "teacher_config"]

QUESTION_RE = re.compile(r"^Question: (.*)$", re.MULTILINE)
INFO_RE = re.compile(r"<information>\s*(.*?)\s*</information>", re.DOTALL)
TURNS_LEFT_RE = re.compile(r"you have (\d+) turns? left", re.IGNORECASE)
_MAX_OPEN_RUNS = 20_000  # attempts cut off by the loop never answer; forget the oldest
_WORD = re.compile(r"\w+")


class TeacherConfig(BaseModel):
    """Knobs of a scripted teacher (probabilities of showing each behavior when called for)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="custom", description="Preset name recorded in trajectories.")
    verify: float = Field(default=0.0, ge=0, le=1, description="Information verification.")
    authority: float = Field(default=0.0, ge=0, le=1, description="Authority evaluation.")
    adaptive: float = Field(default=0.0, ge=0, le=1, description="Adaptive search.")
    recovery: float = Field(default=0.0, ge=0, le=1, description="Error recovery.")
    slip: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Chance that weighing sources goes wrong once adaptive search and error "
        "recovery were already shown in the run (so behavior-rich runs can end wrong).",
    )
    max_searches: int = Field(default=8, ge=1, description="Searches before a forced answer.")


def _preset(name: str, **kw: float) -> TeacherConfig:
    return TeacherConfig(name=name, **kw)


#: Named teachers. "all" = every behavior, the priming-data source; "plain" = none (the
#: template for base-model data); one preset per behavior alone.
TEACHER_PRESETS: dict[str, TeacherConfig] = {
    "plain": _preset("plain"),
    "all": _preset("all", verify=0.97, authority=0.97, adaptive=0.97, recovery=0.97, slip=0.33),
    "verify": _preset("verify", verify=1.0),
    "authority": _preset("authority", authority=1.0),
    "adaptive": _preset("adaptive", adaptive=1.0),
    "recovery": _preset("recovery", recovery=1.0),
}


def teacher_config(spec: str | TeacherConfig) -> TeacherConfig:
    """A preset by name, or a config as given."""
    if isinstance(spec, TeacherConfig):
        return spec
    try:
        return TEACHER_PRESETS[spec]
    except KeyError:
        raise ConfigError(
            f"unknown teacher preset {spec!r}; known: {', '.join(TEACHER_PRESETS)}"
        ) from None


def _tokens(name: str) -> set[str]:
    return {w for w in _WORD.findall(name.lower()) if len(w) > 1}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _Claim:
    rank: int
    page: Page
    subj: str
    value: str


@dataclass
class _Step:
    think: str
    kind: str  # "search" | "answer"
    content: str
    behaviors: list[str]
    move: str


class _Run:
    """The state of one teacher attempt at one task."""

    def __init__(self, teacher: Teacher, world: World, chain: list[Fact], task_meta: dict):
        self.t = teacher
        self.cfg = teacher.config
        self.w = world
        self.chain = chain
        self.hop = 0
        self.subj = chain[0].subject
        start = world.entities[self.subj]
        self.alias_mode = task_meta.get("named_as") == "alias" and bool(start.alias)
        self.descriptor = task_meta.get("descriptor")
        self.subj_name = start.alias if self.alias_mode else start.name
        self.purpose: str | None = None
        self.queries: list[str] = []
        self.hop_claims: list[_Claim] = []
        self.pending: _Claim | None = None
        self.wrong: tuple[int, str, str] | None = None  # (hop, followed twin, true entity)
        self.recovery_tried = False
        self.avoid: set[str] = set()
        self.adapts = 0
        self.fired = 0
        self.hard = 0  # authority, adaptive and recovery moves so far
        self.kinds: set[str] = set()  # distinct behaviors shown so far (slips grow with it)
        self.verify_searches = 0
        self.recover_retries = 0
        self.just_recovered = False
        self.n_search = 0
        self.best_guess: str | None = None
        self.rng = random.Random(0)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def rel(self):
        return RELATIONS[self.chain[self.hop].relation]

    @property
    def final(self) -> bool:
        return self.hop == len(self.chain) - 1

    def pick(self, bank: Sequence[str], **kw: Any) -> str:
        text = self.rng.choice(bank).format(**kw)
        return _cap(text)

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

    def read(self, hits) -> list[_Claim]:
        """Claims of the current relation in the results, in rank order."""
        out = []
        rel = self.chain[self.hop].relation
        for i, hit in enumerate(hits, start=1):
            page = self.w.page_for(hit.title, hit.text)
            if page is None:
                continue
            for r, s, o in page.claims:
                if r == rel:
                    out.append(_Claim(i, page, s, o))
        return out

    def search(self, think: str, patterns: Sequence[str], name: str, behaviors, move) -> _Step:
        if self.n_search >= self.cfg.max_searches:
            value = self.best_guess or "unknown"
            return _Step(self.pick(P.LIMIT, v=value), "answer", value, [], "limit")
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
        return _Step(think, "search", query, behaviors, move)

    # -- the policy ------------------------------------------------------------------------
    def step(self, hits, turn: int, rng: random.Random) -> _Step:
        self.rng = rng
        if self.purpose is None:
            step = self.first()
        elif self.purpose == "verify":
            step = self.after_verify(hits)
        else:
            step = self.after_find(hits)
        self.kinds.update(step.behaviors)
        return step

    def first(self) -> _Step:
        self.purpose = "find"
        think = self.pick(P.START, goal=self.goal(0, self.subj_name))
        think = f"{think} {self.plan()}"  # state the chain, so a small student knows when to stop
        if self.descriptor:  # the obvious query copies the question's details
            name = f"{self.subj_name} {self.descriptor}"
            return self.search(think, self.rel.queries, name, [], "start")
        return self.search(think, self.rel.queries, self.subj_name, [], "start")

    def after_find(self, hits) -> _Step:
        if self.wrong and self.hop > self.wrong[0] and not self.recovery_tried:
            self.recovery_tried = True
            if self.fire(self.cfg.recovery):
                return self.recover()
        claims = [c for c in self.read(hits) if c.subj not in self.avoid]
        want = _tokens(self.subj_name)
        loose = [c for c in claims if want <= _tokens(self.w.name(c.subj))]
        if not loose and self.avoid and self.recover_retries < 1 and self.just_recovered:
            self.recover_retries += 1
            self.hard += 1
            twin = self.w.name(next(iter(self.avoid)))
            kind = P.KIND_NOUN[self.w.entities[self.subj].kind]
            think = self.pick(P.RECOVER_RETRY, twin=twin, base=self.subj_name, kind=kind)
            patterns = self.rel.queries + self.rel.verify_queries
            return self.search(think, patterns, self.subj_name, ["error_recovery"], "recover_retry")
        self.just_recovered = False
        if not loose:
            return self.poor(hits, claims)
        cand = loose[0]
        if cand.subj != self.subj and self.w.entities[cand.subj].twin_of == self.subj:
            if self.wrong is None:
                self.wrong = (self.hop, cand.subj, self.subj)
            self.subj = cand.subj  # the teacher now (wrongly) follows the near-duplicate
        same = [c for c in loose if c.subj == cand.subj]
        self.hop_claims.extend(same)
        if self._tiers_disagree(same) and self.fire(self.cfg.authority):
            return self.weigh(same)
        if self.fire(self.cfg.verify):
            values = list(dict.fromkeys(c.value for c in same))
            if len(values) > 1:  # visible disagreement: count the sources
                counts = {v: len({c.page.id for c in same if c.value == v}) for v in values}
                top = max(values, key=lambda v: (counts[v], v == cand.value))
                if all(counts[top] > counts[v] for v in values if v != top):
                    self.fired += 1
                    other = next(v for v in values if v != top)
                    chosen = next(c for c in same if c.value == top)
                    think = self.pick(P.VERIFY_MAJORITY, v=self.w.name(top), w=self.w.name(other))
                    return self.adopt(
                        chosen, think, ["information_verification"], "verify_majority"
                    )
            agree = [c for c in same if c.value == cand.value and c.page.id != cand.page.id]
            if agree:
                self.fired += 1
                think = self.pick(
                    P.VERIFY_CROSS, a=cand.rank, b=agree[0].rank, v=self.w.name(cand.value)
                )
                return self.adopt(cand, think, ["information_verification"], "verify_cross")
            if self.verify_searches >= 2:  # at most two extra searches keep runs short
                return self.adopt(cand, None, [], "read")
            self.verify_searches += 1
            self.fired += 1
            self.pending = cand
            self.purpose = "verify"
            think = self.pick(P.VERIFY_SEARCH, r=cand.rank, v=self.w.name(cand.value))
            patterns = self.rel.verify_queries
            return self.search(
                think,
                patterns,
                self.w.name(cand.subj),
                ["information_verification"],
                "verify_search",
            )
        return self.adopt(cand, None, [], "read")

    @staticmethod
    def _tiers_disagree(claims: list[_Claim]) -> bool:
        """Visible conflict: two values, the better-sourced one strictly more authoritative."""
        if len({c.value for c in claims}) < 2:
            return False
        best = max(claims, key=lambda c: (c.page.authority, -c.rank))
        return any(c.value != best.value and c.page.authority < best.page.authority for c in claims)

    def weigh(self, claims: list[_Claim], by_rank: bool = True) -> _Step:
        """Authority evaluation over disagreeing claims about one subject."""
        self.fired += 1
        self.hard += 1
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
            sa=P.SOURCE_NOUN[low.page.source],
            w=self.w.name(low.value),
            b=best.rank,
            sb=P.SOURCE_NOUN[best.page.source],
            v=self.w.name(best.value),
        )
        bank_ok, bank_slip = P.AUTHORITY, P.AUTHORITY_SLIP
        if not by_rank:
            bank_ok = tuple(b for b in P.AUTHORITY if "{a}" not in b)
            bank_slip = tuple(b for b in P.AUTHORITY_SLIP if "{a}" not in b)
        if self.fire(slip):
            return self.adopt(
                low, self.pick(bank_slip, **kw), ["authority_evaluation"], "weigh_slip"
            )
        return self.adopt(best, self.pick(bank_ok, **kw), ["authority_evaluation"], "weigh")

    def after_verify(self, hits) -> _Step:
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
            if self._tiers_disagree(list(pool.values())) and self.fire(self.cfg.authority):
                step = self.weigh(list(pool.values()), by_rank=False)
                step.behaviors = beh + step.behaviors
                return step
            counts = {v: sum(c.value == v for c in pool.values()) for v in values}
            top = max(values, key=lambda v: (counts[v], v == cand.value))
            other = next(v for v in values if v != top)
            if counts[top] > counts[other]:
                chosen = next(c for c in pool.values() if c.value == top)
                think = self.pick(P.VERIFY_MAJORITY, v=self.w.name(top), w=self.w.name(other))
                return self.adopt(chosen, think, beh, "verify_majority")
        if agree:
            think = self.pick(P.VERIFY_AGREE, r=agree[0].rank, v=self.w.name(cand.value))
            return self.adopt(cand, think, beh, "verify_agree")
        think = self.pick(P.VERIFY_NOTHING, v=self.w.name(cand.value))
        return self.adopt(cand, think, beh, "verify_none")

    def poor(self, hits, claims: list[_Claim]) -> _Step:
        """No result states the needed fact about the entity we are after."""
        name = self.w.name(self.subj)
        if self.adapts < 2 and self.fire(self.cfg.adaptive):
            self.adapts += 1
            self.fired += 1
            self.hard += 1
            beh = ["adaptive_search"]
            if self.alias_mode:
                for i, hit in enumerate(hits, start=1):
                    page = self.w.page_for(hit.title, hit.text)
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
                kind = self.w.entities[self.subj].kind
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
            page = self.w.page_for(hit.title, hit.text)
            if page is not None and page.about and page.about != self.subj:
                value = self.w.name(page.about)
                break
        return _Step(self.pick(P.GUESS, noun=self.rel.noun, v=value), "answer", value, [], "guess")

    def recover(self) -> _Step:
        hop, twin, base = self.wrong
        self.fired += 1
        self.hard += 1
        kind = self.w.entities[base].kind
        think = self.pick(
            P.RECOVER,
            twin=self.w.name(twin),
            base=self.w.name(base),
            kind=P.KIND_NOUN[kind],
            noun=RELATIONS[self.chain[hop].relation].noun,
        )
        self.hop, self.subj, self.subj_name = hop, base, self.w.name(base)
        self.avoid.add(twin)
        self.just_recovered = True
        self.wrong = None
        self.hop_claims = []
        self.purpose = "find"
        patterns = self.rel.verify_queries + self.rel.queries
        return self.search(think, patterns, self.subj_name, ["error_recovery"], "recover")

    def adopt(
        self, c: _Claim, think: str | None, beh: list[str], move: str, fallback=False
    ) -> _Step:
        """Take ``c.value`` as this hop's answer; answer or move to the next hop."""
        rel = self.chain[self.hop].relation
        v = self.w.name(c.value)
        self.best_guess = v
        fact = self.fact_text(rel, self.w.name(c.subj), v)
        done = self.progress()
        noun = RELATIONS[rel].noun
        if self.final:
            if think:
                think = f"{think} {done} {self.pick(P.ANSWER_SHORT, v=v)}"
            elif fallback:
                think = self.pick(P.FALLBACK_ANSWER, r=c.rank, noun=noun, v=v, progress=done)
            else:
                think = self.pick(
                    P.ANSWER, r=c.rank, fact=fact, Fact=_cap(fact), v=v, progress=done
                )
            return _Step(think, "answer", v, beh, move)
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
            think = self.pick(
                P.NEXT, r=c.rank, fact=fact, Fact=_cap(fact), goal=goal, progress=done
            )
        return self.search(think, self.rel.queries, v, beh, move)


class Teacher:
    """A scripted search agent with one knob per behavior (implements the LLM protocol)."""

    def __init__(self, world: World, config: str | TeacherConfig = "all"):
        self.world = world
        self.config = teacher_config(config)
        self.name = f"teacher:{self.config.name}"
        self._runs: dict[tuple[str, int], _Run] = {}

    def describe(self) -> dict[str, Any]:
        return {"kind": "teacher", **self.config.model_dump()}

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Rough count (4 characters a token); teachers have no tokenizer."""
        return sum(len(m.content) // 4 + 4 for m in messages)

    async def aclose(self) -> None:
        self._runs.clear()

    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        return self.respond(messages, params.seed)

    def respond(self, messages: Sequence[Message], seed: int | None = None) -> Completion:
        """The teacher's next response to ``messages`` (sync; ``complete`` wraps it)."""
        seed = 0 if seed is None else int(seed)
        users = [m for m in messages if m.role == "user"]
        match = QUESTION_RE.search(users[0].content) if users else None
        question = match.group(1).strip() if match else ""
        task = self.world.task_by_question(question) if question else None
        n_prev = sum(m.role == "assistant" for m in messages)
        if task is None:
            text = f"<think>{P.UNKNOWN_TASK}</think>\n<answer>unknown</answer>"
            return Completion(text=text, meta={"behaviors": [], "move": "unknown_task"})
        key = (question, seed)
        run = self._runs.get(key)
        if run is None or n_prev == 0:
            run = _Run(self, self.world, self.world.chain(task), task.meta)
            if len(self._runs) >= _MAX_OPEN_RUNS:
                self._runs.pop(next(iter(self._runs)))
            self._runs[key] = run
        hits = []
        if run.purpose is not None and users:
            info = INFO_RE.search(users[-1].content)
            hits = parse_hits(info.group(1)) if info else []
            left = TURNS_LEFT_RE.search(users[-1].content)
            if left and int(left.group(1)) <= 1:  # the loop says this is the last turn
                run.n_search = max(run.n_search, run.cfg.max_searches)
        digest = hashlib.sha256(f"{question}|{seed}|{n_prev}".encode()).digest()
        step = run.step(hits, n_prev, random.Random(int.from_bytes(digest[:8], "big")))
        if step.kind == "answer":
            self._runs.pop(key, None)
        text = f"<think>{step.think}</think>\n<{step.kind}>{step.content}</{step.kind}>"
        meta = {
            "behaviors": list(dict.fromkeys(step.behaviors)),
            "move": step.move,
            "hop": run.hop,
            "teacher": self.config.name,
        }
        return Completion(text=text, finish_reason="stop", meta=meta)
