"""Seeded synthetic corpora in the Search-R1 layout (``{"id", "contents"}``) and queries.

Words follow a Zipf law over a fixed synthetic vocabulary whose most frequent ranks are real
English function words (so stop-word removal matters as in real text); passages are ~100 words
with a 2-4 word title; queries are 4-9 words drawn from a random passage, like a question.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FUNCTION_WORDS = (
    "the of and to in is was for on as with by he that it at from his an were are which this "
    "be or has had first also new their not but one after its who two they her been other when "
    "there all during into school time may years more most only over city some world would where "
    "later up such used many can state about national out known university united then made"
).split()


def _vocab(rng: np.random.Generator, size: int) -> list[str]:
    cons = list("bcdfghjklmnprstvwz")
    vow = list("aeiou")
    words: dict[str, None] = dict.fromkeys(FUNCTION_WORDS)
    while len(words) < size:
        n = int(rng.integers(2, 5))
        w = "".join(cons[rng.integers(len(cons))] + vow[rng.integers(len(vow))] for _ in range(n))
        if rng.random() < 0.3:
            w += rng.choice(["s", "ing", "ed", "er", "ion"])
        words[w] = None
    return list(words)


def make_corpus(path: Path, n_docs: int, seed: int = 0, vocab_size: int = 200_000) -> Path:
    """Write ``n_docs`` passages to ``path`` (skipped if it already exists)."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    vocab = np.array(_vocab(rng, vocab_size), dtype=object)
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks**1.07
    p /= p.sum()
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        step = 10_000
        for start in range(0, n_docs, step):
            n = min(step, n_docs - start)
            lens = rng.integers(80, 121, size=n)
            tlens = rng.integers(2, 5, size=n)
            words = vocab[rng.choice(len(vocab), size=int(lens.sum() + tlens.sum()), p=p)]
            pos = 0
            lines = []
            for i in range(n):
                title = " ".join(words[pos : pos + tlens[i]]).title()
                pos += tlens[i]
                text = " ".join(words[pos : pos + lens[i]])
                pos += lens[i]
                lines.append(json.dumps({"id": str(start + i), "contents": f'"{title}"\n{text}'}))
            fh.write("\n".join(lines) + "\n")
    tmp.rename(path)
    return path


def make_queries(corpus: Path, n: int, seed: int = 1) -> list[str]:
    """``n`` queries of 4-9 words, each drawn from a random passage among the first 20k."""
    rng = np.random.default_rng(seed)
    texts = []
    with corpus.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= 20_000:
                break
            texts.append(json.loads(line)["contents"].split("\n", 1)[1].split())
    out = []
    for _ in range(n):
        words = texts[rng.integers(len(texts))]
        k = int(rng.integers(4, 10))
        idx = np.sort(rng.choice(len(words), size=k, replace=False))
        out.append(" ".join(words[j] for j in idx))
    return out
