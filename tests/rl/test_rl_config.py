"""The RL run config: knobs and ``trl`` say each TRL field once, ``trl`` is checked when the YAML
loads, and ``report_to`` logs a real GRPO step to TensorBoard (and an offline wandb run)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.rl.config import RLRunConfig
from searchprime.rl.grpo import grpo_config, read_steps, run_rl

REPO = Path(__file__).resolve().parents[2]
BASE = {"model": "m", "tasks": "t", "output_dir": "o", "search": {"kind": "bm25", "path": "i"}}


def _write(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump({**BASE, **fields}))
    return path


def test_an_unknown_trl_field_fails_when_the_yaml_loads(tmp_path):
    path = _write(tmp_path, trl={"lerning_rate": 1e-6})
    with pytest.raises(
        ConfigError,
        match=r"rl.yaml: trl: .*lerning_rate: not a trl.GRPOConfig field "
        r"\(did you mean 'learning_rate'\?\)",
    ):
        load_config(RLRunConfig, path)
    path = _write(tmp_path, trl={"reward_weights": [1.0]})
    with pytest.raises(ConfigError, match=r"trl: .*reward_weights: set by searchprime"):
        load_config(RLRunConfig, path)


@pytest.mark.parametrize("name", ["grpo_smollm2_cpu.yaml", "grpo_paper_gpu.yaml"])
def test_the_documented_configs_still_load(name):
    cfg = load_config(RLRunConfig, REPO / "docs" / "rl" / name)
    assert cfg.trl["learning_rate"] > 0 and cfg.learning_rate is None


def test_a_knob_and_its_trl_field_give_the_same_grpo_config():
    by_trl = RLRunConfig(**BASE, trl={"learning_rate": 3e-6, "max_steps": 7, "beta": 0.01})
    by_knob = RLRunConfig(**BASE, learning_rate=3e-6, max_steps=7, beta=0.01)
    assert grpo_config(by_knob).to_dict() == grpo_config(by_trl).to_dict()
    assert grpo_config(by_knob).max_steps == 7
    with pytest.raises(ValidationError, match=r"learning_rate: set it as learning_rate, not in"):
        RLRunConfig(**BASE, learning_rate=3e-6, trl={"learning_rate": 1e-6})


def test_tasks_per_step_and_micro_batch_decide_the_batch():
    # 3 tasks x G=2 (from trl) per step, in passes of 3 episodes
    cfg = RLRunConfig(**BASE, tasks_per_step=3, micro_batch=3, trl={"num_generations": 2})
    args = grpo_config(cfg)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (3, 2)
    assert cfg.episodes_per_step() == 6
    # without them: trl's (or the CPU defaults') batch, as before
    assert RLRunConfig(**BASE).episodes_per_step() == 8
    with pytest.raises(ValidationError, match="micro_batch: needs tasks_per_step"):
        RLRunConfig(**BASE, micro_batch=2)
    with pytest.raises(ValidationError, match="micro_batch: 4 does not divide the 6 episodes"):
        RLRunConfig(**BASE, tasks_per_step=3, num_generations=2, micro_batch=4)
    with pytest.raises(ValidationError, match="gradient_accumulation_steps: set it as tasks_per"):
        RLRunConfig(**BASE, tasks_per_step=3, trl={"gradient_accumulation_steps": 2})


def test_report_to_logs_a_grpo_step(toy, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.syspath_prepend(str(REPO / "tests" / "train"))
    from test_report_to import tensorboard_scalars, wandb_history

    trackers = ["tensorboard"]
    if importlib.util.find_spec("wandb") is not None:
        trackers.append("wandb")
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.delenv("WANDB_DIR", raising=False)
        monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "rl"
    cfg = RLRunConfig(
        model=str(toy.model),
        tasks=str(toy.tasks),
        search={"kind": "bm25", "path": str(toy.index)},
        output_dir=str(out),
        episode={"max_turns": 1, "max_tokens": 8, "max_length": 256, "thinking": "none"},
        rewards={"format": 1.0},
        limit=2,
        max_steps=1,
        num_generations=2,
        tasks_per_step=1,
        report_to=trackers,
        trl={"save_strategy": "no", "disable_tqdm": True, "learning_rate": 1e-3},
    )
    run_rl(cfg)
    (step,) = read_steps(out)
    loss = step["trl"]["loss"]
    assert tensorboard_scalars(out / "runs", "train/loss") == [(1, pytest.approx(loss, abs=1e-6))]
    rewards = tensorboard_scalars(out / "runs", "train/reward")
    assert rewards == [(1, pytest.approx(step["trl"]["reward"], abs=1e-6))]
    if "wandb" in trackers:
        (run_dir,) = (out / "wandb").glob("offline-run-*")
        assert wandb_history(run_dir, "train/loss") == [(1, pytest.approx(loss, abs=1e-6))]
    assert json.loads((out / "searchprime_rl.json").read_text())["steps"] == 1
