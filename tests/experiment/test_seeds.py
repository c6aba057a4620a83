"""The study repeated over seeds: one ordinary run per seed, mean ± sd across them."""

from __future__ import annotations

import json

import pytest

from searchprime.experiment import ExperimentConfig, run_experiment
from searchprime.experiment.seeds import aggregate_seeds

TINY = {
    "name": "seeds",
    "seeds": [0, 1],
    "world": {"seed": 1, "entities": 300, "tasks": 900},
    "teachers": {"base_pool": 40, "prime_pool": 120},
    "sft": {
        "model": "tiny",
        "base_n": 4,
        "epochs": 1,
        "batch_size": 4,
        "max_length": 4096,
        "trl": {"max_steps": 1},
    },
    "arms": [{"name": "rand", "strategy": "random", "n": 4}],
    "eval": {"dev_n": 2, "max_turns": 1, "max_batch": 2, "entropy": False},
}


def _arm(em: float) -> dict:
    behaviors = ["information_verification", "authority_evaluation", "adaptive_search"]
    rates = dict.fromkeys([*behaviors, "error_recovery"], em / 2)
    return {"em": em, "f1": em, "turns": 2.0, "searches": 1.0, "behavior": rates}


def test_aggregate_is_mean_and_sample_sd_per_model():
    reports = {
        0: {"arms": {"base": _arm(0.2), "primed": _arm(0.1), "only0": _arm(1.0)}},
        1: {"arms": {"base": _arm(0.4), "primed": _arm(0.1)}},
    }
    agg = aggregate_seeds(reports)
    assert agg["seeds"] == [0, 1] and set(agg["arms"]) == {"base", "primed"}
    em = agg["arms"]["base"]["em"]
    assert em["mean"] == pytest.approx(0.3) and em["sd"] == pytest.approx(0.1414, abs=1e-4)
    assert em["per_seed"] == [0.2, 0.4] and em["n"] == 2
    assert agg["arms"]["primed"]["em"]["sd"] == 0.0
    assert agg["arms"]["base"]["behavior"]["error_recovery"]["mean"] == pytest.approx(0.15)


def test_repeated_seeds_must_differ():
    with pytest.raises(ValueError, match="distinct"):
        ExperimentConfig.model_validate({**TINY, "seeds": [1, 1]})


@pytest.mark.slow
def test_one_study_per_seed_then_the_aggregate(tmp_path):
    cfg = ExperimentConfig.model_validate(TINY)
    report = run_experiment(cfg, tmp_path, log=lambda _m: None)
    assert report["seeds"] == [0, 1]
    per_seed = {}
    for s in (0, 1):
        one = json.loads((tmp_path / f"seed-{s}" / "report.json").read_text())
        saved = json.loads((tmp_path / f"seed-{s}" / "experiment.json").read_text())
        assert saved["seed"] == s and saved["seeds"] is None
        assert (tmp_path / f"seed-{s}" / "report.html").exists()
        per_seed[s] = one["arms"]["rand"]["em"]
        # the seed changes the selection: each run trained on its own draw
        assert one["selection"]["rand"]["config"]["seed"] == s
    assert report["arms"]["rand"]["em"]["per_seed"] == [per_seed[0], per_seed[1]]
    assert json.loads((tmp_path / "report.json").read_text()) == report
