"""`searchprime index plan`: estimates against the real sizes of small built indexes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from searchprime.cli.index_cmd import DENSE_KINDS
from searchprime.cli.main import app
from searchprime.errors import ConfigError
from searchprime.search._faiss_kinds import KINDS
from searchprime.search.dense import DenseConfig
from searchprime.search.dense_plan import plan_dense

runner = CliRunner()
TOLERANCE = 0.02  # the issue asks for 10%; the layouts are modelled byte for byte


@pytest.mark.parametrize("n, dim", [(2000, 32), (6000, 48)])
def test_plan_matches_built_sizes(tmp_path: Path, n: int, dim: int) -> None:
    pytest.importorskip("faiss")
    from searchprime.search._faiss_build import build_faiss
    from searchprime.search._faiss_vectors import NpyAppender

    rng = np.random.default_rng(0)
    emb = tmp_path / "embeddings.npy"
    vectors = NpyAppender(emb)
    vectors.append(rng.standard_normal((n, dim), dtype=np.float32))
    vectors.close()
    cfg = DenseConfig(pq_nbits=5, train_size=1000, hnsw_m=8, shard_size=1500)
    for plan in plan_dense(n, dim, None, cfg):
        out = tmp_path / plan.kind
        out.mkdir()
        build_faiss(emb, out, cfg.model_copy(update={"index": plan.kind}))
        real = sum(p.stat().st_size for p in out.glob("faiss.*"))
        assert abs(plan.index_disk - real) <= TOLERANCE * real, (plan.kind, plan.index_disk, real)
        assert plan.embeddings_disk == emb.stat().st_size
    assert [p.kind for p in plan_dense(n, dim, ["ivf_pq"], cfg)] == ["ivf_pq"]


def test_plan_formulas_at_wiki_scale() -> None:
    flat, pq, sq = plan_dense(21_000_000, 768, ["flat", "ivf_pq", "hnsw_sq8"])
    assert flat.index_disk == 4 * 21_000_000 * 768  # Search-R1's e5 flat index: ~62 GB
    assert pq.bytes_per_vector == 768 // 4 + 8  # D/4 one-byte codes + an 8-byte id
    assert pq.memory_min < 100 * 2**20 < pq.index_disk < flat.index_disk / 10
    assert sq.bytes_per_vector == pytest.approx(768 + 8 * 32 + 4 * 32 / 31 + 12, abs=0.05)
    assert sq.build_peak > sq.index_disk  # built in memory
    assert pq.build_peak < 8 * 2**30  # shards + a training sample, not all vectors


def test_plan_cli_table_json_and_errors() -> None:
    assert DENSE_KINDS == KINDS
    res = runner.invoke(app, ["index", "plan", "--docs", "1000000", "--dim", "384"])
    assert res.exit_code == 0, res.output
    for kind in KINDS:
        assert kind in res.output
    assert "1.4 GiB" in res.output and "IVF4000,PQ96x8np" in res.output
    res = runner.invoke(
        app,
        ["index", "plan", "--docs", "1000", "--dim", "64", "--kind", "flat,ivf_pq", "--json"],
    )
    rows = [json.loads(line) for line in res.output.strip().splitlines()]
    assert res.exit_code == 0 and [r["kind"] for r in rows] == ["flat", "ivf_pq"]
    assert rows[0]["index_disk"] == 4 * 1000 * 64
    for args, field in [
        (["--kind", "ivf_sq"], "dense.index"),
        (["--pq-m", "50"], "dense.pq_m"),
        (["--hnsw-m", "2"], "hnsw_m"),
        (["--train-size", "10", "--kind", "ivf"], "dense.train_size"),
    ]:
        res = runner.invoke(app, ["index", "plan", "--docs", "100000", "--dim", "384", *args])
        assert isinstance(res.exception, ConfigError) and field in str(res.exception), args
