"""``load_world``: read a built world back with fast lookups for teachers and annotators."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchprime.errors import RecordError
from searchprime.records import Task, iter_json_lines, read_jsonl
from searchprime.world.schema import AUTHORITY, Entity, Fact

__all__ = ["Page", "World", "load_world"]


def _norm(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Page:
    """One corpus page with its ground truth."""

    id: str
    title: str
    text: str
    source: str
    url: str
    about: str | None
    role: str
    claims: list[tuple[str, str, str]]
    alias_of: str | None

    @property
    def authority(self) -> int:
        return AUTHORITY.get(self.source, 1)


@dataclass
class World:
    """A built sandbox world: entities, facts, pages and tasks, indexed for lookup."""

    root: Path
    card: dict[str, Any]
    entities: dict[str, Entity]
    facts: dict[str, Fact]
    pages: dict[str, Page]
    tasks: dict[str, list[Task]] = field(default_factory=dict)
    _by_name: dict[str, str] = field(default_factory=dict)
    _by_alias: dict[str, str] = field(default_factory=dict)
    _fact_of: dict[tuple[str, str], Fact] = field(default_factory=dict)
    _page_key: dict[tuple[str, str], Page] = field(default_factory=dict)
    _task_q: dict[str, Task] = field(default_factory=dict)
    _task_id: dict[str, Task] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for ent in self.entities.values():
            self._by_name[ent.name.lower()] = ent.id
            if ent.alias:
                self._by_alias[ent.alias.lower()] = ent.id
        for fact in self.facts.values():
            self._fact_of[(fact.subject, fact.relation)] = fact
        for page in self.pages.values():
            self._page_key[(_norm(page.title), _norm(page.text))] = page
        for rows in self.tasks.values():
            for task in rows:
                self._task_q[_norm(task.question)] = task
                self._task_id[task.id] = task

    # -- lookups ---------------------------------------------------------------------------
    def name(self, eid: str) -> str:
        return self.entities[eid].name

    def entity_by_name(self, name: str) -> Entity | None:
        eid = self._by_name.get(_norm(name).lower())
        return self.entities[eid] if eid else None

    def entity_by_alias(self, alias: str) -> Entity | None:
        eid = self._by_alias.get(_norm(alias).lower())
        return self.entities[eid] if eid else None

    def fact(self, subject: str, relation: str) -> Fact | None:
        return self._fact_of.get((subject, relation))

    def page_for(self, title: str, text: str) -> Page | None:
        """The page a formatted hit came from (matched on title and text)."""
        page = self._page_key.get((_norm(title), _norm(text)))
        if page is None:  # format_hits turns ( ) into [ ] in titles
            page = self._page_key.get(
                (_norm(title).replace("[", "(").replace("]", ")"), _norm(text))
            )
        return page

    def task_by_question(self, question: str) -> Task | None:
        return self._task_q.get(_norm(question))

    def task(self, task_id: str) -> Task | None:
        return self._task_id.get(task_id)

    def chain(self, task: Task) -> list[Fact]:
        return [self.facts[f] for f in task.meta.get("chain", [])]

    def split(self, name: str) -> list[Task]:
        if name not in self.tasks:
            raise RecordError(self.root / "tasks", None, "split", f"no split named {name!r}")
        return self.tasks[name]


def load_world(path: str | Path) -> World:
    """Read a world written by :func:`searchprime.world.build_world`."""
    root = Path(path)
    card_path = root / "world.json"
    if not card_path.exists():
        raise RecordError(card_path, None, "world.json", "not a sandbox world (run `world build`)")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    entities: dict[str, Entity] = {}
    for line, row in iter_json_lines(root / "entities.jsonl"):
        try:
            entities[row["id"]] = Entity(**row)
        except (KeyError, TypeError) as exc:
            raise RecordError(root / "entities.jsonl", line, "<record>", str(exc)) from None
    facts: dict[str, Fact] = {}
    for line, row in iter_json_lines(root / "facts.jsonl"):
        try:
            facts[row["id"]] = Fact(**row)
        except (KeyError, TypeError) as exc:
            raise RecordError(root / "facts.jsonl", line, "<record>", str(exc)) from None
    truth = {row["id"]: row for _, row in iter_json_lines(root / "pages.jsonl")}
    pages: dict[str, Page] = {}
    for line, row in iter_json_lines(root / "corpus.jsonl"):
        t = truth.get(row.get("id"))
        if t is None:
            raise RecordError(root / "corpus.jsonl", line, "id", "page missing from pages.jsonl")
        pages[row["id"]] = Page(
            id=row["id"],
            title=row["title"],
            text=row["text"],
            source=row["source"],
            url=row["url"],
            about=t["about"],
            role=t["role"],
            claims=[tuple(c) for c in t["claims"]],
            alias_of=t["alias_of"],
        )
    tasks = {p.stem: list(read_jsonl(p, Task)) for p in sorted((root / "tasks").glob("*.jsonl"))}
    return World(root=root, card=card, entities=entities, facts=facts, pages=pages, tasks=tasks)
