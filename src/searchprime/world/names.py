"""Generated names: pronounceable, fictional, unique, with near-duplicate variants.

Every name is built from syllables so no pretrained knowledge can help; a ``NameBank``
hands out each name (and each surname-like token) at most once, so BM25 sees distinct
entities as distinct tokens unless a near-duplicate is made on purpose.
"""

from __future__ import annotations

import random

__all__ = ["NameBank"]

_ONSETS = "b d f g h k l m n p r s t v z br dr st tr th".split()
_VOWELS = "a e i o u a e o ai ei".split()
_CODAS = ["", "", "", "n", "r", "l", "s", "m"]

_ORG_KINDS = ("Works", "Press", "Mills", "Foundry", "Institute", "Company", "Guild", "Bank")
_TITLE_ADJ = (
    "Amber Silent Hollow Iron Pale Crimson Winter Hidden Broken Golden Quiet Salt Glass "
    "Distant Ashen Northern Copper Scarlet Lost Last"
).split()
_TITLE_NOUN = (
    "Gate Harbour Orchard Lantern Tide Archive Meridian Threshold Garden Bell Ledger Compass "
    "Mirror Crown Passage Signal Kettle River Tower Voyage"
).split()
_PERSON_TWIN = ("{first} {last}-{syl}", "{first} {last} the Younger", "{first} {last} Jr")
_ORG_TWIN = ("{name} Group", "New {name}", "{name} International", "{name} Holdings")
_WORK_TWIN = ("{name} Revisited", "{name} II", "{name}: A Sequel")


class NameBank:
    """Deterministic source of unique fictional names."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.tokens: set[str] = set()

    def _syllable(self) -> str:
        r = self.rng
        return r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS)

    def word(self, n_syl: tuple[int, int] = (2, 2), unique_token: bool = True) -> str:
        """A capitalised pseudo-word; with ``unique_token`` never handed out twice."""
        for _ in range(1000):
            w = "".join(self._syllable() for _ in range(self.rng.randint(*n_syl)))
            if not 4 <= len(w) <= 9:
                continue
            w = w.capitalize()
            if not unique_token or w.lower() not in self.tokens:
                self.tokens.add(w.lower())
                return w
        raise RuntimeError("name space exhausted; use a larger syllable range")

    def _unique(self, make) -> str:
        for _ in range(1000):
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("could not find a fresh name")

    def person(self) -> str:
        return self._unique(lambda: f"{self.word((2, 2), False)} {self.word((2, 2))}")

    def city(self) -> str:
        return self._unique(lambda: self.word())

    def country(self) -> str:
        return self._unique(lambda: self.word((2, 2)) + self.rng.choice(["ia", "a", "or", "and"]))

    def org(self) -> str:
        return self._unique(lambda: f"{self.word()} {self.rng.choice(_ORG_KINDS)}")

    def work(self) -> str:
        r = self.rng
        return self._unique(
            lambda: f"The {r.choice(_TITLE_ADJ)} {r.choice(_TITLE_NOUN)} of {self.word()}"
        )

    def alias(self, kind: str) -> str:
        """A second name for an entity of ``kind`` (pen name, former name, old name)."""
        if kind == "person":
            return self._unique(lambda: f"{self.word((2, 2), False)} {self.word()}")
        if kind == "org":
            return self._unique(lambda: f"{self.word()} {self.rng.choice(_ORG_KINDS)}")
        if kind == "work":
            return self._unique(lambda: f"{self.word()} {self.rng.choice(_TITLE_NOUN)}")
        return self._unique(lambda: self.word())

    def twin(self, kind: str, name: str) -> str:
        """A near-duplicate of ``name``: it holds every token of ``name`` plus one more."""
        r = self.rng
        if kind == "person":
            first, last = name.split(" ", 1)
            return self._unique(
                lambda: r.choice(_PERSON_TWIN).format(first=first, last=last, syl=self.word((1, 2)))
            )
        if kind == "org":
            return self._unique(lambda: r.choice(_ORG_TWIN).format(name=name))
        return self._unique(lambda: r.choice(_WORK_TWIN).format(name=name))
