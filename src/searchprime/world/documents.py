"""Short pages (about 20-50 words) about entities, from sources of different authority.

Page roles: ``entity`` (encyclopedia/official: every fact, correct), ``news`` (one fact,
other wording), ``chatter`` (blog/forum: names the entity, states nothing), ``conflict``
(forum/blog: a wrong value, worded like the questions so it ranks high), ``twin`` (a
near-duplicate entity's Q&A page, correct for the twin, worded to outrank the original),
``alias`` (ties an alias to the entity, states no relation) and ``theme`` (pages about a
descriptor that state facts of other entities; they catch over-specific queries).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from searchprime.world.schema import SOURCES, Doc, Entity, Fact

__all__ = ["PageMaker"]

_OCCUPATIONS = (
    "painter engineer poet merchant chemist composer cartographer shipwright architect "
    "botanist sculptor historian"
).split()
_WORK_KINDS = ("novel", "memoir", "poetry collection", "travel book", "play", "history")

# relation -> phrasings of "s --r--> o" for encyclopedic, news and chatty voices
_SAY: dict[str, dict[str, tuple[str, ...]]] = {
    "born_in": {
        "enc": ("{s} was born in {o}.", "Born in {o}, {s} trained locally."),
        "news": ("{s}, a native of {o}, spoke to reporters.", "The {o}-born {s} returned home."),
        "low": (
            "{s} was born in {o}, that is the birthplace I remember.",
            "Pretty sure {s} was born in {o}; the hometown is {o}.",
        ),
    },
    "headquartered_in": {
        "enc": ("It is headquartered in {o}.", "Its head office is in {o}."),
        "news": ("{s}, based in {o}, reported strong sales.", "The {o}-based {s} is hiring."),
        "low": (
            "{s} headquarters are in {o}, the head office city.",
            "{s} is headquartered in {o} as far as I know.",
        ),
    },
    "founded_by": {
        "enc": ("It was founded by {o}.", "{o} founded it."),
        "news": ("{s}, founded by {o}, marked an anniversary.", "Founder {o} opened a new site."),
        "low": (
            "{s} was founded by {o}; the founder was {o}.",
            "Who founded {s}? The founder is {o}, no doubt.",
        ),
    },
    "written_by": {
        "enc": ("It was written by {o}.", "Its author is {o}."),
        "news": ("{o}, author of {s}, gave a reading.", "{s} by {o} was reprinted."),
        "low": (
            "{s} was written by {o}; the author is {o}.",
            "Who wrote {s}? The author was {o}, I believe.",
        ),
    },
    "located_in": {
        "enc": ("{s} is a city in the country of {o}.", "{s} lies in the country of {o}."),
        "news": ("{s}, a city in {o}, hosted a festival.", "Travel: {s} in {o} draws visitors."),
        "low": (
            "{s} is in {o}, that is the country.",
            "Which country is {s} in? It is in {o}.",
        ),
    },
}

_FILLER = (
    "Records from that period are sparse.",
    "The name is often misspelled.",
    "Several archives hold related papers.",
    "It is mentioned in regional guides.",
    "Visitors often ask about its history.",
    "Local societies still discuss it.",
)

_CHATTER = (
    "Just finished reading about {s}. Fascinating, but I still have questions.",
    "Anyone else following {s}? I saw a talk about {s} last year.",
    "My notes on {s}: worth a visit, though the guides disagree on details.",
    "Thread: favourite stories about {s}. Share yours below.",
)

_ALIAS = {
    "person": ("{a} is the pen name of {s}.", "{s} also wrote under the name {a}."),
    "org": ("{a} is the former name of {s}.", "{s} was known as {a} until it was renamed."),
    "work": ("{a} was the working title of {s}.", "{s} first appeared under the title {a}."),
    "city": ("{a} is the old name of {s}.", "{s} was called {a} in earlier centuries."),
}

_Q_TITLES = {
    "born_in": "Where was {s} born?",
    "headquartered_in": "Where is {s} headquartered?",
    "founded_by": "Who founded {s}?",
    "written_by": "Who wrote {s}?",
    "located_in": "Which country is {s} in?",
}


def slug(name: str) -> str:
    """URL-safe lower-case form of a name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class PageMaker:
    """Builds the pages of a world; ``name(id)`` resolves entity ids to names."""

    def __init__(self, rng: random.Random, name: Callable[[str], str]):
        self.rng = rng
        self.name = name
        self.docs: list[Doc] = []

    def _add(self, title, sentences, source, url, about, role, claims=(), alias_of=None) -> None:
        text = " ".join(" ".join(sentences).split())
        self.docs.append(
            Doc(
                id="",
                title=title,
                text=text,
                source=source,
                url=url,
                about=about,
                role=role,
                claims=[list(c) for c in claims],
                alias_of=alias_of,
            )
        )

    def _say(self, voice: str, fact: Fact, obj: str | None = None) -> str:
        pattern = self.rng.choice(_SAY[fact.relation][voice])
        return pattern.format(s=self.name(fact.subject), o=self.name(obj or fact.object))

    def _domain(self, source: str) -> str:
        return self.rng.choice(SOURCES[source])

    def entity_pages(self, ent: Entity, own: list[Fact], inverse: list[Fact]) -> None:
        """Encyclopedia (+ official for orgs and cities), news and chatter pages."""
        r = self.rng
        s = ent.name
        enc: list[str] = []
        claims = []
        if ent.kind == "person":
            enc.append(f"{s} is a {r.choice(_OCCUPATIONS)}.")
        elif ent.kind == "org":
            enc.append(f"{s} is a {ent.name.split()[-1].lower()} business.")
        elif ent.kind == "work":
            enc.append(f"{s} is a {r.choice(_WORK_KINDS)}.")
        elif ent.kind == "country":
            enc.append(f"{s} is a country with {r.randint(3, 40)} provinces.")
        for f in own:
            enc.append(self._say("enc", f))
            claims.append((f.relation, f.subject, f.object))
        for f in inverse[:2]:  # "X founded Y" on X's page
            if f.relation == "founded_by":
                enc.append(f"{s} founded {self.name(f.subject)}.")
            elif f.relation == "written_by":
                enc.append(f"{s} wrote {self.name(f.subject)}.")
            else:
                continue
            claims.append((f.relation, f.subject, f.object))
        enc.append(r.choice(_FILLER))
        dom = self._domain("encyclopedia")
        self._add(s, enc, "encyclopedia", f"https://{dom}/wiki/{slug(s)}", ent.id, "entity", claims)
        if ent.kind in ("org", "city") and own:
            off = [f"Welcome to {s}."]
            off += [self._say("enc", f) for f in own]
            url = f"https://www.{slug(s)}.{'gov' if ent.kind == 'city' else 'com'}/about"
            own_claims = [(f.relation, f.subject, f.object) for f in own]
            self._add(f"About {s}", off, "official", url, ent.id, "entity", own_claims)
        if own and r.random() < 0.75:
            f = r.choice(own)
            dom = self._domain("news")
            self._add(
                f"{s} in the news",
                [self._say("news", f), r.choice(_FILLER)],
                "news",
                f"https://{dom}/{slug(s)}-{r.randint(100, 999)}",
                ent.id,
                "news",
                [(f.relation, f.subject, f.object)],
            )
        if r.random() < 0.5:
            source = r.choice(("blog", "forum"))
            dom = self._domain(source)
            self._add(
                f"Notes on {s}" if source == "blog" else f"About {s}",
                [r.choice(_CHATTER).format(s=s)],
                source,
                f"https://{dom}/{slug(s)}",
                ent.id,
                "chatter",
            )

    def conflict_page(self, fact: Fact) -> None:
        """A low-authority page stating ``fact.wrong`` in the words queries use."""
        r = self.rng
        source = r.choice(("forum", "blog"))
        s = self.name(fact.subject)
        dom = self._domain(source)
        self._add(
            _Q_TITLES[fact.relation].format(s=s),
            [self._say("low", fact, fact.wrong)],
            source,
            f"https://{dom}/t/{slug(s)}-{r.randint(1000, 9999)}",
            fact.subject,
            "conflict",
            [(fact.relation, fact.subject, fact.wrong)],
        )

    def twin_page(self, fact: Fact) -> None:
        """A short Q&A page for a near-duplicate entity (correct for the twin)."""
        r = self.rng
        source = r.choice(("forum", "news"))
        s = self.name(fact.subject)
        dom = self._domain(source)
        self._add(
            _Q_TITLES[fact.relation].format(s=s),
            [self._say("low", fact)],
            source,
            f"https://{dom}/q/{slug(s)}-{r.randint(1000, 9999)}",
            fact.subject,
            "twin",
            [(fact.relation, fact.subject, fact.object)],
        )

    def alias_page(self, ent: Entity) -> None:
        """The one page that ties ``ent.alias`` to ``ent.name`` (no relation stated)."""
        r = self.rng
        sentence = r.choice(_ALIAS[ent.kind]).format(a=ent.alias, s=ent.name)
        source = r.choice(("encyclopedia", "news"))
        dom = self._domain(source)
        self._add(
            ent.alias,
            [sentence, r.choice(_FILLER)],
            source,
            f"https://{dom}/{slug(ent.alias)}",
            ent.id,
            "alias",
            alias_of=ent.id,
        )

    def theme_page(self, descriptor: str, facts: list[Fact]) -> None:
        """A page about a descriptor naming other entities' facts (not the task's entity)."""
        r = self.rng
        source = r.choice(("blog", "forum", "news"))
        dom = self._domain(source)
        head = descriptor[0].upper() + descriptor[1:]
        sentences = [f"{head}: a short round-up."]
        sentences += [self._say("low", f) for f in facts]
        self._add(
            head,
            sentences,
            source,
            f"https://{dom}/{slug(descriptor)}-{r.randint(100, 999)}",
            None,
            "theme",
            [(f.relation, f.subject, f.object) for f in facts],
        )
