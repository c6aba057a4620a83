"""A tiny study with the handbook arm, a prompted and a bonus RL run: each prompt reaches exactly
the rollouts it is meant for, the bonus is a reward of its run, every model is labelled by both
annotators, and the report says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchprime.agent.prompts import HANDBOOK
from searchprime.experiment import ExperimentConfig, report_rows, run_experiment
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl
from tests.experiment.tiny import TINY_RL, TINY_SFT

TINY = {
    "name": "arms",
    "world": {"seed": 1, "entities": 300, "tasks": 900},
    "teachers": {"base_pool": 40, "prime_pool": 20},
    "sft": TINY_SFT,
    "arms": [],
    "prompt_arms": [{"name": "handbook", "model": "base", "prompt": "handbook"}],
    "eval": {"dev_n": 2, "max_turns": 2, "max_batch": 2, "max_tokens": 24, "entropy": False},
    "rl": {
        **TINY_RL,
        "runs": [
            {"name": "prompted-rl", "start_from": "base", "prompt": "handbook"},
            {"name": "bonus-rl", "rewards": {"em": 1.0, "behavior": 0.1}, "annotator": "grounded"},
        ],
    },
}


def _system(path: Path) -> list[str]:
    return [t.messages[0].content for t in read_jsonl(path, Trajectory)]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("arms")
    report = run_experiment(ExperimentConfig.model_validate(TINY), out, log=lambda _m: None)
    return out, report


@pytest.mark.slow
def test_handbook_reaches_its_eval_and_prompted_rl_only_its_episodes(study):
    out, report = study
    assert list(report["arms"])[:3] == ["base", "handbook", "prompted-rl"]
    handbook = _system(out / "eval" / "handbook.jsonl")
    assert len(handbook) == 2 and all(s.endswith(HANDBOOK) for s in handbook)
    assert not any(HANDBOOK in s for s in _system(out / "eval" / "base.jsonl"))
    # RL sees the handbook; the RL'd model's dev evaluation does not
    episodes = sorted((out / "rl" / "prompted-rl" / "episodes").glob("*.jsonl"))
    assert episodes and all(HANDBOOK in s for f in episodes for s in _system(f))
    assert not any(HANDBOOK in s for s in _system(out / "eval" / "prompted-rl.jsonl"))
    rows = report["arms"]
    assert rows["handbook"]["parent"] == "base" and rows["handbook"]["prompt"] == "handbook"
    assert rows["prompted-rl"]["parent"] == "base" and rows["prompted-rl"]["rl"]["steps"] == 1
    pairs = {(c["model"], c["against"]) for c in report["comparisons"]}
    assert pairs == {("handbook", "base"), ("prompted-rl", "base"), ("bonus-rl", "base")}
    assert report["claims"] == []  # no behavior arm: no claim of the paper can be tested
    # the bonus is one of bonus-rl's rewards, from the grounded annotator's labels of each episode
    steps = (out / "rl" / "bonus-rl" / "steps.jsonl").read_text().splitlines()
    assert "rewards/behavior/mean" in json.loads(steps[0])["trl"]
    assert "rewards/behavior/mean" not in (out / "rl" / "prompted-rl" / "steps.jsonl").read_text()
    for f in (out / "rl" / "bonus-rl" / "episodes").glob("*.jsonl"):
        assert {t.labels.annotator for t in read_jsonl(f, Trajectory)} == {"grounded:v1"}
    by_model = {r["model"]: r for r in report_rows(report)}
    assert by_model["prompted-rl"]["ΔEM"][0] in "+-" and by_model["handbook"]["ΔEM"] == "-"


@pytest.mark.slow
def test_every_model_is_labelled_by_both_annotators(study):
    out, report = study
    for name in ("base", "handbook", "prompted-rl", "bonus-rl"):
        rules = list(read_jsonl(out / "eval" / f"{name}.labelled.jsonl", Trajectory))
        grounded = list(read_jsonl(out / "eval" / f"{name}.grounded.jsonl", Trajectory))
        assert [t.key for t in rules] == [t.key for t in grounded] and len(rules) == 2
        assert {t.labels.annotator for t in rules} == {"rules:v1"}
        assert {t.labels.annotator for t in grounded} == {"grounded:v1"}
        assert [t.scores for t in grounded] == [t.scores for t in rules]
        row = report["arms"][name]
        assert set(row["grounded"]["behavior"]) == set(BEHAVIORS)
        assert set(row["agreement"]) == set(BEHAVIORS)
        for b in BEHAVIORS:
            a = row["agreement"][b]
            assert a["n"] + a.get("unknown", 0) <= 2 and a["only_rules"] <= a["n"]
            assert len(row["ci95"][b]) == 2 and len(row["grounded"]["ci95"][b]) == 2
        assert row["ci95"]["turns"][0] <= row["turns"] <= row["ci95"]["turns"][1]
    row = report_rows(report)[0]
    assert {"verify", "verify:g", "recovery:g", "agree"} <= set(row)
    # a rerun reads the labels it left
    before = (out / "eval" / "base.grounded.jsonl").stat().st_mtime_ns
    cfg = ExperimentConfig.model_validate(TINY)
    again = run_experiment(cfg, out, log=lambda _m: None)
    assert (out / "eval" / "base.grounded.jsonl").stat().st_mtime_ns == before
    assert again["arms"]["base"]["agreement"] == report["arms"]["base"]["agreement"]
