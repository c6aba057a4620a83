"""BM25: real index builds, parity with rank_bm25 and bm25s, async batching, bad input."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pytest

from searchprime.errors import RecordError
from searchprime.search._text import Tokenizer
from searchprime.search.base import SearchBackend
from searchprime.search.bm25 import BM25Config, BM25Search, build_bm25_index, read_manifest
from searchprime.search.corpus import read_corpus

from .conftest import random_rows, toy_rows, write_jsonl

QUERIES = [
    "capital of France",
    "river flowing through Lyon",
    "cats and dogs",
    "mountains of the Alps",
    "capital city",
    "Danube",
    "purring cats sleep",
]


@pytest.fixture(scope="module")
def toy(toy_index: Path) -> BM25Search:
    s = BM25Search.load(toy_index)
    yield s
    s.close()


def test_search_returns_hits_with_source(toy: BM25Search) -> None:
    assert isinstance(toy, SearchBackend)
    [hits] = toy.search_sync(["capital of France"], 3)
    assert hits[0].doc_id == "paris"
    assert (hits[0].title, hits[0].source) == ("Paris", "encyclopedia")
    assert hits[0].url == "https://en.wikipedia.org/wiki/Paris"
    assert hits[0].score > hits[-1].score > 0
    assert toy.search_sync(["zzzz qqqq", "the of and"], 3) == [[], []]
    assert len(toy.search_sync(["Danube"], 5)[0]) == 1  # only matching documents
    assert toy.describe()["k1"] == 0.9 and toy.describe()["num_docs"] == 12


def _reference_scores(rows: list[dict], query: str) -> np.ndarray:
    """rank_bm25's BM25Okapi with Lucene's idf: exactly (k1 + 1) x the Lucene BM25 score."""
    from rank_bm25 import BM25Okapi

    class LuceneBM25(BM25Okapi):
        def _calc_idf(self, nd):  # noqa: ANN001
            n = self.corpus_size
            self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in nd.items()}

    tok = Tokenizer()
    docs = [tok.tokens(f"{d.title}\n{d.text}") for d in read_corpus_rows(rows)]
    ref = LuceneBM25(docs, k1=0.9, b=0.4)
    return ref.get_scores(tok.tokens(query)) / (0.9 + 1)


def read_corpus_rows(rows: list[dict]):
    from searchprime.search.corpus import parse_record

    return [parse_record(r) for r in rows]


@pytest.mark.parametrize("query", QUERIES)
def test_scores_and_order_match_rank_bm25(toy: BM25Search, query: str) -> None:
    rows = toy_rows()
    ref = _reference_scores(rows, query)
    ids, scores = toy.retrieve_ids([query], 12)
    got = {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}
    want = {i: s for i, s in enumerate(ref) if s > 0}
    assert set(got) == set(want)
    for i, s in want.items():
        assert got[i] == pytest.approx(s, rel=1e-5)
    # ranking: descending score, ties by corpus position
    order = sorted(want, key=lambda i: (-want[i], i))
    assert [int(i) for i in ids[0] if i >= 0] == order


def test_scores_match_bm25s(toy: BM25Search) -> None:
    bm25s = pytest.importorskip("bm25s")
    tok = Tokenizer()
    r = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    r.index([tok.tokens(f"{d.title}\n{d.text}") for d in read_corpus_rows(toy_rows())])
    for q in QUERIES:
        theirs = r.get_scores(tok.tokens(q))
        ids, scores = toy.retrieve_ids([q], 12)
        for i, s in zip(ids[0], scores[0], strict=True):
            if i >= 0:
                assert theirs[i] == pytest.approx(s, rel=1e-5)


def test_async_search_batches_concurrent_calls(toy: BM25Search) -> None:
    async def main() -> list:
        return await asyncio.gather(*(toy.search([q], 2) for q in QUERIES * 5))

    got = asyncio.run(main())
    want = [toy.search_sync([q], 2)[0] for q in QUERIES * 5]
    assert [g[0] for g in got] == want
    assert toy._batcher.batches < len(QUERIES) * 5  # merged into fewer index calls


def test_parallel_build_equals_serial(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", random_rows(3000))
    serial = build_bm25_index(corpus, tmp_path / "s", BM25Config(workers=1))
    par = build_bm25_index(corpus, tmp_path / "p", BM25Config(workers=2, block_bytes=16384))
    vs = json.loads((serial / "vocab.index.json").read_text())
    vp = json.loads((par / "vocab.index.json").read_text())
    assert len(np.load(serial / "postings.lo.npy")) == len(np.load(par / "postings.lo.npy"))
    # same scores for the same queries, whatever the vocabulary order
    s1, s2 = BM25Search.load(serial), BM25Search.load(par)
    qs = ["river port", "castle bridge library", "glacier", "coast plain volcano tower"]
    (i1, c1), (i2, c2) = s1.retrieve_ids(qs, 10), s2.retrieve_ids(qs, 10)
    assert np.array_equal(i1, i2) and np.allclose(c1, c2)
    assert set(vs) == set(vp) and read_manifest(par)["num_docs"] == 3000
    s1.close()
    s2.close()


def test_threads_and_topk_bounds(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", random_rows(500, seed=3))
    idx = build_bm25_index(corpus, tmp_path / "i")
    one, two = BM25Search.load(idx, threads=1), BM25Search.load(idx, threads=2)
    qs = [f"river {w}" for w in ("port", "castle", "lake", "tower", "canal", "forest")] * 4
    a, b = one.retrieve_ids(qs, 7), two.retrieve_ids(qs, 7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.all(np.diff(a[1], axis=1) <= 0)  # descending
    ids, _ = one.retrieve_ids(["river"], 10_000)  # k larger than the corpus
    assert ids.shape == (1, 10_000) and (ids[0] >= 0).sum() <= 500
    one.close()
    two.close()


def test_stemming_and_stopwords_configurable(tmp_path: Path) -> None:
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": "a", "text": "the running dogs"}, {"id": "b", "text": "a run of the dog"}],
    )
    stem = BM25Search.load(build_bm25_index(corpus, tmp_path / "s"))
    assert {h.doc_id for h in stem.search_sync(["runs"], 5)[0]} == {"a", "b"}
    assert stem.search_sync(["the"], 5) == [[]]
    raw = BM25Search.load(
        build_bm25_index(corpus, tmp_path / "r", BM25Config(stemmer=None, stopwords=None))
    )
    assert [h.doc_id for h in raw.search_sync(["running"], 5)[0]] == ["a"]
    assert len(raw.search_sync(["the"], 5)[0]) == 2


def test_bad_lines(tmp_path: Path) -> None:
    rows = [json.dumps(r) for r in toy_rows()]
    rows[4] = '{"id": "x", "contents": 3}'
    rows[7] = "{oops"
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as info:
        build_bm25_index(p, tmp_path / "i1")
    assert str(info.value).startswith(f"{p}:5: contents:")
    idx = build_bm25_index(p, tmp_path / "i2", skip_bad=True)
    man = read_manifest(idx)
    assert man["skipped"] == 2 and man["num_docs"] == 10
    assert len(list(read_corpus(p, skip_bad=True))) == 10
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(RecordError, match="no documents"):
        build_bm25_index(empty, tmp_path / "i3")


def test_pruned_topk_equals_brute_force(tmp_path: Path) -> None:
    """MaxScore pruning must not change the top k: compare with dense numpy scoring."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(400)]
    p = 1.0 / np.arange(1, 401) ** 1.1
    p /= p.sum()
    rows = [
        {"id": str(i), "text": " ".join(rng.choice(vocab, size=rng.integers(5, 60), p=p))}
        for i in range(4000)
    ]
    idx = BM25Search.load(
        build_bm25_index(write_jsonl(tmp_path / "z.jsonl", rows), tmp_path / "i"), threads=1
    )
    n = idx.num_docs
    post = idx.postings
    indptr = post.indptr
    indices = (np.asarray(post.hi, np.int64) << 16) | np.asarray(post.lo)
    term = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))  # each posting's term
    tf = np.asarray(post.tf, np.float64)
    data = post.idf[term] * tf / (tf + post.norm[indices])
    queries = [" ".join(rng.choice(vocab, size=rng.integers(1, 9), p=p)) for _ in range(200)]
    for k in (1, 3, 10):
        ids, scores = idx.retrieve_ids(queries, k)
        q_ptr, q_terms = idx.encode_queries(queries)
        for qi in range(len(queries)):
            full = np.zeros(n)
            for t in q_terms[q_ptr[qi] : q_ptr[qi + 1]]:
                full[indices[indptr[t] : indptr[t + 1]]] += data[indptr[t] : indptr[t + 1]]
            order = np.lexsort((np.arange(n), -full))[:k]
            want = [(int(d), full[d]) for d in order if full[d] > 0]
            got = [(int(d), float(s)) for d, s in zip(ids[qi], scores[qi], strict=True) if d >= 0]
            assert len(got) == len(want)
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)
            # same documents, except where float rounding reorders exact ties
            for (dg, _sg), (dw, sw) in zip(got, want, strict=True):
                assert dg == dw or abs(full[dg] - sw) < 1e-5 * sw
