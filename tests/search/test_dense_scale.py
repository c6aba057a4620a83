"""Compressed, memory-mapped, sharded FAISS indexes on clustered vectors (and one real encoder
build): recall vs exact search, sharded == one-shot, bounded build memory, config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from searchprime.config import load_config  # noqa: E402
from searchprime.errors import ConfigError  # noqa: E402
from searchprime.search._faiss_build import build_faiss, read_faiss  # noqa: E402
from searchprime.search._faiss_kinds import index_spec, set_search_params  # noqa: E402
from searchprime.search._faiss_vectors import NpyAppender, read_rows, read_sample  # noqa: E402
from searchprime.search.dense import DenseConfig  # noqa: E402

N, D, Q = 3000, 32, 100
SMALL = {"nlist": 16, "pq_m": 8, "pq_nbits": 6, "train_size": 1500, "hnsw_m": 16}
# recall@10 vs exact search at nprobe 8 / efSearch 64; measured ivf 0.998, hnsw 1.0,
# hnsw_sq8 0.992, ivf_pq 0.637, opq_ivf_pq 0.655 (6-bit PQ codes of 4 floats: 3 bytes/vector)
MIN_RECALL = {"ivf": 0.95, "hnsw": 0.95, "hnsw_sq8": 0.95, "ivf_pq": 0.55, "opq_ivf_pq": 0.55}


def clustered(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """Unit vectors from a mixture of Gaussians with a decaying noise spectrum (like
    sentence embeddings: a few directions carry most of the within-topic variation)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    rot, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = 1.0 / (1.0 + np.arange(d))
    basis = spectrum[:, None] * 0.9 / np.linalg.norm(spectrum) * rot
    labels = rng.integers(k, size=n)
    x = centers[labels] + rng.standard_normal((n, d)) @ basis
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """An embeddings file, queries, and the exact top-10 of each query."""
    allx = clustered(N + Q, D, 40)
    emb = tmp_path_factory.mktemp("vecs") / "embeddings.npy"
    np.save(emb, allx[:N])
    exact = faiss.IndexFlatIP(D)
    exact.add(allx[:N])
    return emb, allx[N:], exact.search(allx[N:], 10)[1]


def _recall(got: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(e)) / len(e) for g, e in zip(got, exact, strict=True)]))


def _mapped(path: Path) -> bool:
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


@pytest.mark.parametrize("kind", sorted(MIN_RECALL))
def test_kind_builds_maps_and_recalls(data: tuple, tmp_path: Path, kind: str) -> None:
    emb, queries, exact = data
    cfg = DenseConfig(index=kind, shard_size=700, **SMALL)
    info = build_faiss(emb, tmp_path, cfg)
    assert info["num_docs"] == N and info["index"] == kind
    index = read_faiss(tmp_path)
    on_disk = tmp_path / ("faiss.ivfdata" if "ivf" in kind else "faiss.index")
    assert on_disk.exists() and _mapped(on_disk)  # memory-mapped, not read into the heap
    assert not list(tmp_path.glob("faiss.shard*"))  # shard files are merged and removed
    set_search_params(index, nprobe=8, ef_search=64)
    recall = _recall(index.search(queries, 10)[1], exact)
    assert recall >= MIN_RECALL[kind], (kind, recall)
    set_search_params(index, nprobe=1, ef_search=10)  # search-time knobs change the results
    assert _recall(index.search(queries, 10)[1], exact) < recall


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf_pq"])
def test_sharded_equals_one_shot(data: tuple, tmp_path: Path, kind: str) -> None:
    """Shards of 430 vectors merged on disk == one in-memory FAISS build over all of them."""
    emb, queries, _ = data
    cfg = DenseConfig(index=kind, shard_size=430, **SMALL)
    build_faiss(emb, tmp_path, cfg)
    sharded = read_faiss(tmp_path)
    spec = index_spec(cfg, N, D)
    one = faiss.index_factory(D, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if not one.is_trained:
        one.train(read_sample(emb, spec.train_size, seed=cfg.seed))
    one.add(read_rows(emb, 0, N))
    set_search_params(sharded, nprobe=4)
    set_search_params(one, nprobe=4)
    d1, i1 = sharded.search(queries, 10)
    d2, i2 = one.search(queries, 10)
    assert np.array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, rtol=1e-5, atol=1e-6)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_sharded_build_memory_is_bounded_by_the_shard(tmp_path: Path) -> None:
    """IVF-PQ over 39 MiB of floats in 5,000-vector shards: peak RSS grows far less than
    the embeddings (measured: 12 MiB; one 80,000-vector shard: 48 MiB)."""
    n, d = 80_000, 128
    emb = tmp_path / "embeddings.npy"
    rng = np.random.default_rng(1)
    vectors = NpyAppender(emb)  # written in blocks, never all in memory
    for _ in range(n // 10_000):
        vectors.append(rng.standard_normal((10_000, d), dtype=np.float32))
    vectors.close()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM)
    except OSError:
        pytest.skip("cannot reset the peak RSS here")
    base = _rss_kib("VmHWM")
    cfg = DenseConfig(
        index="ivf_pq", nlist=64, pq_m=16, pq_nbits=4, train_size=2000, shard_size=5000
    )
    build_faiss(emb, tmp_path, cfg)
    grew_mib = (_rss_kib("VmHWM") - base) / 1024
    floats_mib = n * d * 4 / 2**20
    assert grew_mib < floats_mib / 2, (grew_mib, floats_mib)  # one shard: ~12 MiB; all: 48
    assert read_faiss(tmp_path).ntotal == n


def test_bad_kind_and_params_name_the_field() -> None:
    with pytest.raises(ConfigError, match="index"):
        load_config(DenseConfig, None, {"index": "ivf_sq"})
    with pytest.raises(ConfigError, match="pq_nbits"):
        load_config(DenseConfig, None, {"pq_nbits": 0})
    with pytest.raises(ConfigError, match="shard_size"):
        load_config(DenseConfig, None, {"shard_size": 0})
    with pytest.raises(ConfigError, match=r"dense\.pq_m: 10 does not divide .* 32"):
        index_spec(DenseConfig(index="ivf_pq", pq_m=10), N, D)
    with pytest.raises(ConfigError, match=r"dense\.train_size: 100 training vectors < 256"):
        index_spec(DenseConfig(index="ivf_pq", pq_m=8, train_size=100), N, D)
    with pytest.raises(ConfigError, match=r"dense\.index: 'bogus'"):
        index_spec(DenseConfig().model_copy(update={"index": "bogus"}), N, D)


def test_dense_search_end_to_end_with_ivf_pq(tmp_path: Path) -> None:
    """The real encoder into a compressed index, reloaded mapped, nprobe set at load."""
    pytest.importorskip("sentence_transformers")
    from searchprime.search.dense import DenseSearch, build_dense_index, reindex_dense

    from .conftest import random_rows, toy_rows, write_jsonl

    corpus = write_jsonl(tmp_path / "c.jsonl", toy_rows() + random_rows(300, seed=3))
    cfg = DenseConfig(index="ivf_pq", pq_nbits=6, shard_size=100, threads=1)
    added: list[int] = []
    idx = build_dense_index(corpus, tmp_path / "pq", cfg, index_progress=added.append)
    assert added == [100, 100, 100, 12]
    pq = DenseSearch.load(idx, nprobe=7)
    assert pq.describe()["factory"] == "IVF8,PQ96x6np" and pq.describe()["nprobe"] == 7
    [hits] = pq.search_sync(["Which city is the French capital?"], 3)
    assert hits[0].doc_id == "paris"
    # exact re-scoring of 50 candidates from embeddings.npy, set at load or later
    rr = DenseSearch.load(idx, nprobe=7, rerank=50)
    assert rr.describe()["rerank"] == 50
    [top] = rr.search_sync(["Which city is the French capital?"], 3)
    assert top[0].doc_id == "paris" and top[0].score >= hits[0].score - 1e-3
    (idx / "embeddings.npy").rename(idx / "moved.npy")
    with pytest.raises(ConfigError, match="rerank needs embeddings.npy"):
        DenseSearch.load(idx, rerank=50)
    (idx / "moved.npy").rename(idx / "embeddings.npy")
    sq = DenseSearch.load(reindex_dense(idx, tmp_path / "sq", DenseConfig(index="hnsw_sq8")))
    sq.set_ef_search(32)
    assert sq.describe()["ef_search"] == 32
    assert sq.search_sync(["Which city is the French capital?"], 1)[0][0].doc_id == "paris"


def test_exact_rerank_restores_recall_from_disk(data: tuple, tmp_path: Path) -> None:
    """IVF-PQ candidates re-scored exactly from the memory-mapped embeddings: recall near 1,
    scores equal to the exact inner products, and only file-backed pages (no float copy)."""
    from searchprime.search._faiss_vectors import ExactReranker

    emb, queries, exact = data
    cfg = DenseConfig(index="ivf_pq", shard_size=700, **SMALL)
    build_faiss(emb, tmp_path, cfg)
    index = read_faiss(tmp_path)
    set_search_params(index, nprobe=8)
    plain = _recall(index.search(queries, 10)[1], exact)
    rr = ExactReranker(emb)
    assert _mapped(emb) and isinstance(rr.matrix, np.memmap)
    _, cand = index.search(queries, 100)
    ids, scores = rr.rerank(queries, cand, 10)
    reranked = _recall(ids, exact)
    assert reranked >= 0.97 and reranked > plain + 0.2, (plain, reranked)
    full = np.load(emb)
    np.testing.assert_allclose(scores[0], full[ids[0]] @ queries[0], rtol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    # fewer candidates than topk: the rest is -1 / -inf; no candidate at all: all -1
    few = np.full((2, 100), -1, dtype=np.int64)
    few[0, :3] = [5, 7, 5]
    got_ids, got_scores = rr.rerank(queries[:2], few, 4)
    assert sorted(got_ids[0, :2]) == [5, 7] and list(got_ids[0, 2:]) == [-1, -1]
    assert np.isneginf(got_scores[0, 2:]).all() and (got_ids[1] == -1).all()


def test_rerank_needs_the_embeddings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_embeddings"):
        DenseConfig(index="ivf_pq", rerank=50, keep_embeddings=False)
