"""The study repeated over seeds: one ordinary run per seed, mean ± sd across them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchprime.experiment import ExperimentConfig, run_experiment
from searchprime.experiment.seeds import aggregate_seeds
from tests.experiment.tiny import TINY_SFT

TINY = {
    "name": "seeds",
    "seeds": [0, 1],
    "world": {"seed": 1, "entities": 300, "tasks": 900},
    "teachers": {"base_pool": 40, "prime_pool": 120},
    "sft": TINY_SFT,
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
    # a study first run without seeds becomes seed 0's folder by a link, and is not redone
    single = run_experiment(
        ExperimentConfig.model_validate({**TINY, "seeds": None}),
        tmp_path / "single",
        log=lambda _m: None,
    )
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / "seed-0").symlink_to("../single")
    rollouts = tmp_path / "single" / "eval" / "rand.jsonl"
    written = rollouts.stat().st_mtime_ns
    cfg = ExperimentConfig.model_validate(TINY)
    logs: list[str] = []
    report = run_experiment(cfg, multi, log=logs.append)
    seed1 = logs.index("== seed 1 ==")
    assert not any(line.startswith(("stage sft", "stage rl")) for line in logs[:seed1])
    assert rollouts.stat().st_mtime_ns == written
    assert "stage sft base ..." in logs[seed1:]
    assert report["seeds"] == [0, 1]
    assert report["arms"]["rand"]["em"]["per_seed"][0] == single["arms"]["rand"]["em"]
    # --status shows every seed's folder
    from typer.testing import CliRunner

    from searchprime.cli.main import app

    yaml = tmp_path / "seeds.yaml"
    yaml.write_text(json.dumps(TINY))  # JSON is YAML
    shown = CliRunner().invoke(app, ["experiment", str(yaml), "--out", str(multi), "--status"])
    assert shown.exit_code == 0, shown.output
    assert "(seed 0)" in shown.output and "(seed 1)" in shown.output
    assert shown.output.count("not running") == 2
    tmp_path = multi
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


@pytest.mark.parametrize("exploration", [False, True])
def test_later_seeds_run_the_seed_models_and_skip_exploration(tmp_path, exploration):
    from searchprime.experiment.seeds import run_seeds

    cfg = ExperimentConfig.model_validate(
        {
            **TINY,
            "seeds": [0, 3, 5],
            "seed_models": ["rand"],
            "seed_exploration": exploration,
            "eval": {**TINY["eval"], "entropy": True, "samples": 4, "samples_tasks": 1},
        }
    )
    seen: list[tuple[Path, ExperimentConfig]] = []

    def run_one(one: ExperimentConfig, out: Path) -> dict:
        seen.append((out, one))
        return {"arms": {"base": _arm(0.2 + one.seed / 10), "rand": _arm(0.1)}, "claims": []}

    report = run_seeds(cfg, tmp_path, run_one, log=lambda _m: None)
    assert [out.name for out, _ in seen] == ["seed-0", "seed-3", "seed-5"]
    first, *later = [one for _, one in seen]
    assert (first.seed, first.only, first.seeds) == (0, None, None)
    assert (first.eval.samples, first.eval.entropy) == (4, True)
    for one in later:
        assert one.only == ["rand"] and one.seeds is None
        want = (4, True) if exploration else (1, False)
        assert (one.eval.samples, one.eval.entropy) == want
        # nothing else of eval changes: the dev rollouts stay comparable across seeds
        assert one.eval.model_dump(exclude={"samples", "entropy"}) == first.eval.model_dump(
            exclude={"samples", "entropy"}
        )
    assert report["arms"]["base"]["em"]["per_seed"] == [0.2, 0.5, 0.7]
