"""Generate entities, facts, traps, pages and multi-hop questions from one RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from searchprime.world.documents import PageMaker
from searchprime.world.names import NameBank
from searchprime.world.schema import RELATIONS, TRAPS, Doc, Entity, Fact

__all__ = ["CHAINS", "GeneratedWorld", "generate"]

#: Relation chains (hop order) -> question patterns; "{s}" is the named start entity.
CHAINS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("founded_by", "born_in"): (
        "Where was the founder of {s} born?",
        "In which city was the founder of {s} born?",
    ),
    ("written_by", "born_in"): (
        "Where was the author of {s} born?",
        "In which city was the writer of {s} born?",
    ),
    ("born_in", "located_in"): ("In which country was {s} born?", "{s} was born in which country?"),
    ("headquartered_in", "located_in"): (
        "In which country is {s} headquartered?",
        "In which country are the headquarters of {s}?",
    ),
    ("written_by", "born_in", "located_in"): (
        "In which country was the author of {s} born?",
        "The author of {s} was born in which country?",
    ),
    ("founded_by", "born_in", "located_in"): (
        "In which country was the founder of {s} born?",
        "The founder of {s} was born in which country?",
    ),
}
for _rel in RELATIONS.values():
    CHAINS[(_rel.name,)] = _rel.question

_ROLES = {
    "person": "glassblower lamplighter mapmaker ferryman clockmaker weaver beekeeper bellmaker",
    "org": "rope-maker ink-maker sail-maker lantern-maker dye-maker salt-trader",
    "work": "ballad chronicle fable saga elegy almanac",
    "city": "canal-town mill-town ferry-town market-town bridge-town",
}


@dataclass
class GeneratedWorld:
    entities: dict[str, Entity]
    facts: dict[str, Fact]
    docs: list[Doc]
    tasks: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


def _descriptors(kind: str, places: list[str], rng: random.Random, n: int) -> list[str]:
    """``n`` descriptors like "the ferryman of Vostra" (a place only theme pages name)."""
    roles = [r.replace("-", " ") for r in _ROLES[kind].split()]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        d = f"the {rng.choice(roles)} of {rng.choice(places)}"
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


class _Gen:
    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.names = NameBank(random.Random(cfg.seed + 1))
        self.entities: dict[str, Entity] = {}
        self.by_kind: dict[str, list[str]] = {
            k: [] for k in ("country", "city", "person", "org", "work")
        }
        self.facts: dict[str, Fact] = {}
        self.fact_of: dict[tuple[str, str], str] = {}  # (subject, relation) -> fact id

    # -- entities and facts -------------------------------------------------------------
    def _new(self, kind: str, name: str, **kw: Any) -> Entity:
        ent = Entity(id=f"e{len(self.entities):06d}", kind=kind, name=name, **kw)
        self.entities[ent.id] = ent
        self.by_kind[kind].append(ent.id)
        return ent

    def entities_and_facts(self) -> None:
        cfg, r, nb = self.cfg, self.rng, self.names
        n = cfg.entities
        n_country = max(6, n // 150)
        n_city = max(12, int(n * 0.16))
        rest = n - n_country - n_city
        n_person = int(rest * 0.46)
        n_org = int(rest * 0.27)
        n_work = rest - n_person - n_org
        for _ in range(n_country):
            self._new("country", nb.country())
        for _ in range(n_city):
            self._new("city", nb.city())
        plan = [("person", n_person), ("org", n_org), ("work", n_work)]
        for kind, count in plan:
            made = 0
            while made < count:
                maker = {"person": nb.person, "org": nb.org, "work": nb.work}[kind]
                ent = self._new(kind, maker())
                made += 1
                if made < count and r.random() < cfg.twin_rate:
                    twin = self._new(kind, nb.twin(kind, ent.name), twin_of=ent.id)
                    ent.twin = twin.id
                    made += 1
        descr = {}
        for k in _ROLES:
            count = max(2, len(self.by_kind[k]) // cfg.descriptor_share)
            # a rare two-word place per descriptor: it outweighs the entity's name in BM25
            places = [f"{nb.word()} {nb.word()}" for _ in range(count)]
            descr[k] = _descriptors(k, places, r, count)
        for kind in ("person", "org", "work", "city"):
            for eid in self.by_kind[kind]:
                ent = self.entities[eid]
                ent.descriptor = r.choice(descr[kind])
                if ent.twin_of is None and r.random() < cfg.alias_rate:
                    ent.alias = nb.alias(kind)
        countries, cities, persons = (self.by_kind[k] for k in ("country", "city", "person"))
        for cid in cities:
            self._fact(cid, "located_in", r.choice(countries))
        for pid in persons:
            self._fact(pid, "born_in", r.choice(cities))
        for oid in self.by_kind["org"]:
            self._fact(oid, "headquartered_in", r.choice(cities))
            self._fact(oid, "founded_by", r.choice(persons))
        for wid in self.by_kind["work"]:
            self._fact(wid, "written_by", r.choice(persons))
        for fact in self.facts.values():
            subject = self.entities[fact.subject]
            if subject.twin_of is not None or subject.twin is not None:
                continue  # a near-duplicate is trap enough (and a conflict page would hide it)
            if r.random() < cfg.conflict_rate:
                pool = self.by_kind[RELATIONS[fact.relation].object]
                wrong = r.choice(pool)
                while wrong == fact.object or self.entities[wrong].twin_of == fact.object:
                    wrong = r.choice(pool)
                fact.wrong = wrong

    def _fact(self, s: str, rel: str, o: str) -> None:
        fact = Fact(id=f"f{len(self.facts):06d}", subject=s, relation=rel, object=o)
        self.facts[fact.id] = fact
        self.fact_of[(s, rel)] = fact.id

    # -- pages ----------------------------------------------------------------------------
    def pages(self) -> list[Doc]:
        r = self.rng
        pm = PageMaker(random.Random(self.cfg.seed + 2), lambda i: self.entities[i].name)
        own: dict[str, list[Fact]] = {}
        inverse: dict[str, list[Fact]] = {}
        for f in self.facts.values():
            own.setdefault(f.subject, []).append(f)
            if f.relation in ("founded_by", "written_by"):
                inverse.setdefault(f.object, []).append(f)
        for ent in self.entities.values():
            pm.entity_pages(ent, own.get(ent.id, []), inverse.get(ent.id, []))
            if ent.alias:
                pm.alias_page(ent)
        for f in self.facts.values():
            if f.wrong:
                pm.conflict_page(f)
        for ent in self.entities.values():
            if ent.twin_of is not None:
                for f in own.get(ent.id, []):
                    pm.twin_page(f)  # a short Q&A page per fact: outranks the original
        # theme pages: each descriptor in use gets pages stating facts of entities of its kind
        by_descr: dict[str, list[str]] = {}
        for ent in self.entities.values():
            if ent.descriptor:
                by_descr.setdefault(ent.descriptor, []).append(ent.id)
        for descr in sorted(by_descr):
            kind = self.entities[by_descr[descr][0]].kind
            pool = self.by_kind[kind]
            for _ in range(self.cfg.theme_pages):
                picks = [p for p in r.sample(pool, 3) if self.entities[p].descriptor != descr][:2]
                facts = [f for p in picks for f in own.get(p, [])][:3]
                if facts:
                    pm.theme_page(descr, facts)
        docs = pm.docs
        r.shuffle(docs)
        for i, d in enumerate(docs):
            d.id = f"d{i:06d}"
        return docs

    # -- tasks ----------------------------------------------------------------------------
    def _chain(self, start: str, rels: tuple[str, ...]) -> list[Fact] | None:
        out, cur = [], start
        for rel in rels:
            fid = self.fact_of.get((cur, rel))
            if fid is None:
                return None
            out.append(self.facts[fid])
            cur = self.facts[fid].object
        return out

    def _chain_traps(self, chain: list[Fact]) -> set[str]:
        traps = set()
        if any(f.wrong for f in chain):
            traps.add("conflict")
        if any(self.entities[f.subject].twin for f in chain[:-1]):
            traps.add("distractor")
        return traps

    def _desired(self) -> tuple[int, set[str]]:
        cfg, r = self.cfg, self.rng
        hops = r.choices([1, 2, 3], weights=cfg.hop_weights)[0]
        if r.random() < cfg.combo_rate:
            want = {"conflict", "distractor", r.choice(["alias", "overspecific"])}
            return max(hops, 2), want
        want = {t for t in ("conflict", "distractor") if r.random() < cfg.trap_rates[t]}
        u = r.random()
        if u < cfg.trap_rates["alias"]:
            want.add("alias")
        elif u < cfg.trap_rates["alias"] + cfg.trap_rates["overspecific"]:
            want.add("overspecific")
        if "distractor" in want and hops == 1:
            hops = 2
        return hops, want

    def _buckets(self) -> dict[tuple[int, frozenset[str], bool], list]:
        """Every (chain, start) by (hops, chain traps, start has an alias)."""
        buckets: dict[tuple[int, frozenset[str], bool], list] = {}
        for rels in CHAINS:
            for start in self.by_kind[RELATIONS[rels[0]].subject]:
                ent = self.entities[start]
                if ent.twin_of is not None:
                    continue
                chain = self._chain(start, rels)
                if chain is None or self.entities[chain[-1].subject].twin:
                    continue  # a near-duplicate on the last hop leaves no room to recover
                key = (len(rels), frozenset(self._chain_traps(chain)), bool(ent.alias))
                buckets.setdefault(key, []).append((rels, chain))
        return buckets

    def tasks(self) -> list[dict[str, Any]]:
        cfg, r = self.cfg, self.rng
        buckets = self._buckets()
        keys = sorted(buckets, key=lambda k: (k[0], sorted(k[1]), k[2]))
        seen: set[str] = set()
        tasks: list[dict[str, Any]] = []
        while len(tasks) < cfg.tasks:
            hops, want = self._desired()
            chain_part = frozenset(want & {"conflict", "distractor"})
            need_alias = "alias" in want
            exact = [
                k for k in keys if k[0] == hops and k[1] == chain_part and (k[2] or not need_alias)
            ]
            if not exact:  # closest available: same chain traps, any length; else anything
                exact = [k for k in keys if k[1] == chain_part and (k[2] or not need_alias)]
            if not exact:
                exact = [k for k in keys if k[2] or not need_alias] or keys
            for _ in range(20):
                rels, chain = r.choice(buckets[r.choice(exact)])
                start = self.entities[chain[0].subject]
                got = self._chain_traps(chain) | (want & {"alias", "overspecific"})
                if "alias" in got and not start.alias:
                    got.discard("alias")
                task = self._task(len(tasks), rels, chain, got)
                if task["question"] not in seen:
                    seen.add(task["question"])
                    tasks.append(task)
                    break
        # shuffle so every split has the same mix, then number the tasks
        r.shuffle(tasks)
        for i, task in enumerate(tasks):
            task["id"] = f"sw{cfg.seed}-{i:06d}"
        return tasks

    def _task(self, i: int, rels, chain: list[Fact], traps: set[str]) -> dict[str, Any]:
        r = self.rng
        start = self.entities[chain[0].subject]
        pattern = r.choice(CHAINS[rels])
        named = start.name
        if "alias" in traps:
            named = start.alias
        elif "overspecific" in traps:
            named = f"{start.name}, {start.descriptor}"
            if not pattern.endswith("{s}?"):
                named += ","
        question = pattern.format(s=named)
        question = question[0].upper() + question[1:]
        answer = self.entities[chain[-1].object]
        return {
            "id": f"sw{self.cfg.seed}-{i:06d}",
            "question": question,
            "answers": [answer.name],
            "data_source": "sandbox",
            "meta": {
                "hops": len(chain),
                "relations": list(rels),
                "traps": sorted(traps, key=TRAPS.index),
                "chain": [f.id for f in chain],
                "gold_entities": [chain[0].subject] + [f.object for f in chain],
                "named_as": "alias" if "alias" in traps else "name",
                "descriptor": start.descriptor if "overspecific" in traps else None,
            },
        }


def generate(cfg: Any) -> GeneratedWorld:
    """Build a whole world in memory from ``cfg`` (a :class:`WorldConfig`)."""
    g = _Gen(cfg)
    g.entities_and_facts()
    docs = g.pages()
    tasks = g.tasks()
    return GeneratedWorld(entities=g.entities, facts=g.facts, docs=docs, tasks=tasks)
