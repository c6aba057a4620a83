"""Small real corpora for the retrieval tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = (
    "river port harbor city mountain castle bridge library museum garden forest lake island "
    "valley desert canal tower market temple village station coast plain glacier volcano"
).split()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def toy_rows() -> list[dict]:
    """Twelve passages in both layouts, with sources and URLs on some."""
    rows = [
        {
            "id": "paris",
            "title": "Paris",
            "text": "Paris is the capital and largest city of France.",
            "url": "https://en.wikipedia.org/wiki/Paris",
            "source": "encyclopedia",
        },
        {"id": "lyon", "contents": '"Lyon"\nLyon is a city in France on the Rhone river.'},
        {"id": "rhone", "contents": '"Rhone"\nThe Rhone is a river that flows through Lyon.'},
        {
            "id": "berlin",
            "title": "Berlin",
            "text": "Berlin is the capital of Germany.",
            "source": "forum",
            "url": "http://www.talk.example/berlin",
        },
        {
            "id": "rome",
            "contents": '"Rome"\nRome is the capital city of Italy, with ancient ruins.',
        },
        {"id": "cats", "contents": '"Cats"\nCats are small cats; cats purr and cats sleep.'},
        {"id": "dogs", "contents": '"Dogs"\nDogs bark. Dogs are loyal animals kept as pets.'},
        {"id": "pets", "contents": '"Pets"\nPets such as cats and dogs live with people.'},
        {"id": "seine", "contents": '"Seine"\nThe Seine is a river flowing through Paris.'},
        {"id": "alps", "contents": '"Alps"\nThe Alps are mountains in France, Italy and Germany.'},
        {"id": "danube", "contents": '"Danube"\nThe Danube river flows through many capitals.'},
        {"id": "mont", "contents": '"Mont Blanc"\nMont Blanc is the highest mountain of the Alps.'},
    ]
    return rows


@pytest.fixture()
def toy_corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "toy.jsonl", toy_rows())


def random_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "id": f"doc{i}",
            "contents": f'"{rng.choice(WORDS).title()} {i}"\n'
            + " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))),
        }
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def toy_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from searchprime.search.bm25 import build_bm25_index

    d = tmp_path_factory.mktemp("toyidx")
    corpus = write_jsonl(d / "toy.jsonl", toy_rows())
    return build_bm25_index(corpus, d / "index")
