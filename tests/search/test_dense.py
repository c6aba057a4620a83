"""Dense retrieval with the bundled MiniLM encoder and real FAISS indexes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

from searchprime.search.dense import (  # noqa: E402
    DenseConfig,
    DenseSearch,
    build_dense_index,
    default_model_path,
    reindex_dense,
)

from .conftest import random_rows, toy_rows, write_jsonl  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("dense")
    return write_jsonl(d / "c.jsonl", toy_rows() + random_rows(200, seed=5))


@pytest.fixture(scope="module")
def flat(corpus: Path) -> DenseSearch:
    seen: list[int] = []
    idx = build_dense_index(
        corpus, corpus.parent / "flat", DenseConfig(threads=1), progress=seen.append
    )
    assert sum(seen) == 212
    return DenseSearch.load(idx)


def test_default_model_is_bundled() -> None:
    assert (default_model_path() / "modules.json").exists()


def test_flat_semantic_search(flat: DenseSearch) -> None:
    [hits] = flat.search_sync(["Which city is the French capital?"], 3)
    assert hits[0].doc_id == "paris" and hits[0].source == "encyclopedia"
    assert 0 < hits[0].score <= 1.0001 and hits[0].score >= hits[1].score
    [pets] = asyncio.run(flat.search(["animals that purr"], 2))
    assert pets[0].doc_id in {"cats", "pets"}
    assert flat.describe()["faiss"] == "flat"


def test_ivf_and_hnsw_reload_and_agree(corpus: Path, flat: DenseSearch) -> None:
    ivf_dir = reindex_dense(
        flat.index_dir, corpus.parent / "ivf", DenseConfig(index="ivf", nprobe=2, threads=1)
    )
    ivf = DenseSearch.load(ivf_dir)
    assert ivf.manifest["nlist"] == 212 // 39
    qs = ["capital of Germany", "river through Paris", "highest mountain in the Alps"]
    exact, _ = flat.retrieve_ids(qs, 5)
    ivf.set_nprobe(ivf.manifest["nlist"])  # all lists: exact
    got, _ = ivf.retrieve_ids(qs, 5)
    assert np.array_equal(exact, got)
    hnsw = DenseSearch.load(
        build_dense_index(corpus, corpus.parent / "hnsw", DenseConfig(index="hnsw", threads=1))
    )
    assert hnsw.retrieve_ids(qs, 1)[0][:, 0].tolist() == exact[:, 0].tolist()
