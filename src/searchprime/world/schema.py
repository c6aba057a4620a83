"""The world's vocabulary: entity kinds, typed relations, sources and trap names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUTHORITY",
    "KINDS",
    "RELATIONS",
    "SOURCES",
    "TRAPS",
    "Doc",
    "Entity",
    "Fact",
    "Relation",
]

#: Entity kinds.
KINDS: tuple[str, ...] = ("country", "city", "person", "org", "work")

#: Trap types a task can carry (recorded in ``Task.meta["traps"]``).
TRAPS: tuple[str, ...] = ("conflict", "alias", "overspecific", "distractor")

#: Source kind -> authority tier (3 = most reliable).
AUTHORITY: dict[str, int] = {"encyclopedia": 3, "official": 3, "news": 2, "forum": 1, "blog": 1}

#: Source kind -> domains its pages live on.
SOURCES: dict[str, tuple[str, ...]] = {
    "encyclopedia": ("orbis-wiki.org", "worldpedia.org"),
    "official": (),  # derived from the entity name
    "news": ("harborpost.com", "dailyledger.news", "the-courier.net", "morningwire.com"),
    "forum": ("talkboards.net", "askaround.org", "threadhub.net"),
    "blog": ("inkwell-notes.blog", "wanderpages.blog", "quietdesk.blog"),
}


@dataclass(frozen=True)
class Relation:
    """A typed relation with the words questions, queries and pages use for it."""

    name: str
    subject: str
    object: str
    noun: str  # "birthplace"
    queries: tuple[str, ...]  # natural query patterns, "{s}" = subject name
    verify_queries: tuple[str, ...]  # second-source query patterns
    question: tuple[str, ...]  # one-hop question patterns


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation(
            "born_in",
            "person",
            "city",
            "birthplace",
            ("where was {s} born", "{s} birthplace", "{s} born in", "{s} place of birth"),
            ("{s} native of", "{s} hometown", "{s} grew up"),
            (
                "In which city was {s} born?",
                "Where was {s} born?",
                "What is the birthplace of {s}?",
            ),
        ),
        Relation(
            "headquartered_in",
            "org",
            "city",
            "headquarters",
            ("{s} headquarters", "where is {s} headquartered", "{s} head office city"),
            ("{s} based in", "{s} offices", "where is {s} located"),
            (
                "In which city is {s} headquartered?",
                "Where are the headquarters of {s}?",
                "Which city is {s} based in?",
            ),
        ),
        Relation(
            "founded_by",
            "org",
            "person",
            "founder",
            ("who founded {s}", "{s} founder", "founder of {s}"),
            ("{s} founded by", "{s} history origins", "{s} established by"),
            ("Who founded {s}?", "Who is the founder of {s}?", "Who started {s}?"),
        ),
        Relation(
            "written_by",
            "work",
            "person",
            "author",
            ("who wrote {s}", "{s} author", "author of {s}"),
            ("{s} written by", "{s} novel writer", "{s} book review"),
            ("Who wrote {s}?", "Who is the author of {s}?", "Who is the writer of {s}?"),
        ),
        Relation(
            "located_in",
            "city",
            "country",
            "country",
            ("which country is {s} in", "{s} country", "{s} city country"),
            ("{s} city in", "{s} region nation", "where is {s}"),
            ("In which country is {s}?", "{s} lies in which country?", "Which country is {s} in?"),
        ),
    )
}


@dataclass
class Entity:
    """A fictional entity."""

    id: str
    kind: str
    name: str
    alias: str | None = None
    twin_of: str | None = None  # set on a near-duplicate: the entity it shadows
    twin: str | None = None  # set on the original: its near-duplicate
    descriptor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def card(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "alias": self.alias,
            "twin_of": self.twin_of,
            "twin": self.twin,
            "descriptor": self.descriptor,
        }


@dataclass
class Fact:
    """A true fact ``subject --relation--> object`` (entity ids); ``wrong`` = the false value
    that low-authority pages state when the fact carries a conflict trap."""

    id: str
    subject: str
    relation: str
    object: str
    wrong: str | None = None

    def card(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "relation": self.relation,
            "object": self.object,
            "wrong": self.wrong,
        }


@dataclass
class Doc:
    """A corpus page. ``claims`` lists ``[relation, subject id, object id]`` it states."""

    id: str
    title: str
    text: str
    source: str
    url: str
    about: str | None
    role: str  # entity | news | chatter | conflict | alias | theme | twin
    claims: list[list[str]] = field(default_factory=list)
    alias_of: str | None = None

    def record(self) -> dict[str, Any]:
        """The corpus record (what a retriever indexes and an agent may see)."""
        return {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "url": self.url,
            "source": self.source,
            "authority": AUTHORITY[self.source],
        }

    def page(self) -> dict[str, Any]:
        """The ground truth about the page (kept out of the corpus)."""
        return {
            "id": self.id,
            "about": self.about,
            "role": self.role,
            "claims": self.claims,
            "alias_of": self.alias_of,
        }
