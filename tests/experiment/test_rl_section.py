"""The experiment's ``rl:`` section: validation when the YAML loads, the RL run it maps to, the
degeneracy check and the ΔEM column."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.experiment import ExperimentConfig, report_rows, run_experiment
from searchprime.experiment.rl_stage import rl_run_config
from searchprime.experiment.summary import degeneracy
from searchprime.records import Action, Trajectory, Turn


def _load(tmp_path: Path, rl: str) -> ExperimentConfig:
    path = tmp_path / "exp.yaml"
    path.write_text(f"arms: [{{name: primed}}]\nrl: {rl}\n")
    return load_config(ExperimentConfig, path)


@pytest.mark.parametrize(
    ("rl", "problem"),
    [
        ("{start_from: [base, primd]}", r"rl.start_from: 'primd' is no model.*base, primed"),
        ("{start_from: [base, base]}", r"rl.start_from: .*unique"),
        ("{trl: {lerning_rate: 0.1}}", r"rl.trl: .*lerning_rate: not a trl.GRPOConfig field.*"),
        ("{trl: {lerning_rate: 0.1}}", r"did you mean 'learning_rate'"),
        ("{trl: {output_dir: x}}", r"rl.trl: .*output_dir: set by searchprime"),
        ("{trl: {max_steps: 3}}", r"rl.trl: .*max_steps: set it as rl.max_steps"),
        ("{trl: {per_device_train_batch_size: 8}}", r"set it as rl.micro_batch"),
        ("{trl: {gradient_accumulation_steps: 2}}", r"set it as rl.tasks_per_step"),
        ("{tasks_per_step: 3, num_generations: 2, micro_batch: 4}", r"micro_batch: 4 does not"),
        ("{rewards: {emm: 1.0}}", r"rl.rewards: .*unknown reward 'emm'"),
        ("{rewards: {judge: 1.0}}", r"rl.rewards: .*judge"),
        ("{sampler: sglang}", r"rl.sampler"),
        ("{sampler: vllm, trl: {vllm_mode: colocate}}", r"'colocate' has no server"),
    ],
)
def test_bad_rl_settings_are_refused_when_the_yaml_loads(tmp_path, rl, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        _load(tmp_path, rl)
    assert "exp.yaml" in str(err.value)


def test_good_rl_settings_load(tmp_path):
    cfg = _load(tmp_path, "{start_from: [base, primed], trl: {warmup_steps: 1, bf16: true}}")
    assert cfg.rl is not None and cfg.rl.start_from == ["base", "primed"]
    assert cfg.rl.sampler == "hf" and cfg.rl.rewards == {"em": 1.0}
    assert ExperimentConfig().rl is None  # no section: the study without RL


def test_rl_run_config_follows_the_eval_section(tmp_path):
    cfg = ExperimentConfig.model_validate(
        {
            "seed": 7,
            "eval": {"max_turns": 9, "topk": 4, "prompt": "compact", "max_tokens": 200},
            "rl": {
                "tasks_per_step": 3,
                "num_generations": 2,
                "max_turns": 5,
                "trl": {"bf16": True},
            },
        }
    )
    dest = tmp_path / "rl" / "base"
    (dest / "checkpoint-2").mkdir(parents=True)
    run = rl_run_config(
        cfg,
        tmp_path / "sft" / "base",
        dest,
        tasks=tmp_path / "tasks.jsonl",
        index_dir=tmp_path / "world" / "index",
    )
    assert run.episode.max_turns == 5  # rl's own, else eval's
    assert (run.episode.max_tokens, run.episode.topk, run.episode.prompt) == (200, 4, "compact")
    assert run.search.kind == "bm25" and run.search.path == str(tmp_path / "world" / "index")
    assert run.resume is True
    # 3 groups of 2 episodes per step, one group per forward/backward pass
    trl = {**run.trl, **run.knob_trl()}
    assert trl["per_device_train_batch_size"] == 2 and trl["num_generations"] == 2
    assert trl["gradient_accumulation_steps"] == 3
    assert trl["seed"] == 7 and trl["bf16"] is True and trl["use_cpu"] is True
    assert run.sampler.kind == "hf"


def test_rl_tasks_beyond_the_train_split_are_refused(tmp_path):
    cfg = ExperimentConfig.model_validate(
        {
            "world": {"entities": 100, "tasks": 100},
            "teachers": {"base_pool": 10, "prime_pool": 10},
            "rl": {"tasks": 5000},
        }
    )
    with pytest.raises(ConfigError, match=r"rl.tasks: 5000 RL tasks after the teacher pools"):
        run_experiment(cfg, tmp_path, log=lambda _m: None)
    assert not (tmp_path / "teachers").exists()  # refused before any teacher ran


def _traj(queries: list[str], termination: str = "answer", invalid: int = 0) -> Trajectory:
    turns = [
        Turn(index=i, context=[0], output=q, action=Action(kind="search", content=q))
        for i, q in enumerate(queries)
    ]
    turns += [
        Turn(index=len(turns) + i, context=[0], output="?", action=Action(kind="invalid"))
        for i in range(invalid)
    ]
    return Trajectory(task_id="t", question="q?", turns=turns, termination=termination)


def test_degeneracy_flags_looping_and_unfinished_models():
    healthy = [_traj(["capital of France", "Paris population"]) for _ in range(4)]
    assert degeneracy(healthy) is None
    assert degeneracy([]) is None

    # 3 of 4 searches repeat an earlier query of the same task (case and spacing aside)
    looping = [_traj(["Paris", "paris ", "PARIS", "Paris"])]
    assert "75% of its searches repeat a query" in degeneracy(looping)
    # the same query on two different tasks is no repeat
    assert degeneracy([_traj(["Paris"]), _traj(["Paris"])]) is None

    stuck = [_traj(["a", "b"], "max_turns"), _traj(["c"], "max_turns"), _traj(["d"])]
    assert "67% of its tasks end at the turn limit" in degeneracy(stuck)
    assert degeneracy(stuck[1:2] + healthy[:3]) is None  # 1 in 4

    garbled = [_traj([], "max_turns", invalid=3), _traj(["x"])]
    reason = degeneracy(garbled)
    assert "turn limit" in reason and "75% of its turns hold no valid action" in reason


def test_report_rows_show_the_em_change_of_rl():
    def arm(em: float) -> dict:
        return {
            "n": 10,
            "em": em,
            "f1": em,
            "valid_turns": 1.0,
            "turns": 2.0,
            "searches": 1.0,
            "behavior": dict.fromkeys(
                [
                    "information_verification",
                    "authority_evaluation",
                    "adaptive_search",
                    "error_recovery",
                ],
                0.0,
            ),
            "behavior_offered": dict.fromkeys(
                [
                    "information_verification",
                    "authority_evaluation",
                    "adaptive_search",
                    "error_recovery",
                ],
                None,
            ),
        }

    report = {
        "arms": {"base": arm(0.3), "base+rl": arm(0.35), "primed": arm(0.2), "primed+rl": arm(0.1)}
    }
    rows = {r["model"]: r for r in report_rows(report)}
    assert rows["base"]["ΔEM"] == "-" and rows["primed"]["ΔEM"] == "-"
    assert rows["base+rl"]["ΔEM"] == "+0.050" and rows["primed+rl"]["ΔEM"] == "-0.100"
    assert list(rows["base"])[:5] == ["model", "n", "EM", "95% CI", "ΔEM"]
    assert rows["base"]["95% CI"] == "-" and rows["base"]["H"] == "-"
    assert not any(k.startswith("pass@") for k in rows["base"])
    # with the analysis fields: the CI, the entropy and pass@k at the largest k sampled
    report["arms"]["base"].update(
        ci95={"em": [0.21, 0.4]},
        entropy={"mean": 0.512},
        pass_at_k={"1": {"mean": 0.3}, "4": {"mean": 0.55}},
    )
    rows = {r["model"]: r for r in report_rows(report)}
    assert rows["base"]["95% CI"] == "0.21-0.40" and rows["base"]["H"] == "0.51"
    assert rows["base"]["pass@4"] == "0.55" and rows["primed"]["pass@4"] == "-"
