"""Each training knob is declared once: the experiment's ``sft:`` / ``rl:`` sections and the run
configs share it, every knob set in the study's YAML reaches the run (and TRL's config), and a
bad ``trl:`` field is refused when the YAML loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.experiment import ExperimentConfig
from searchprime.experiment.config import RLSection, SFTSection
from searchprime.experiment.rl_stage import rl_run_config
from searchprime.experiment.sft_stage import sft_run_config
from searchprime.rl.config import RLHyper, RLRunConfig
from searchprime.train.hyper import Hyper, trl_name
from searchprime.train.sft_config import SFTHyper, SFTRunConfig

#: Candidate values tried in order for any shared field: the first the section accepts and that
#: differs from its default is used (no per-field list: a new knob is covered as it is added).
CANDIDATES: list[Any] = [
    2,
    3,
    96,
    0.25,
    "tensorboard",
    ["tensorboard", "wandb"],
    "hops",
    {"f1": 0.5, "format": 0.5},
    {"samples": 3, "max_tasks": 5},
    {"warmup_steps": 3},
]


def _own_fields(cls: type[BaseModel]) -> set[str]:
    """Fields a class declares in its own body (not inherited)."""
    return set(cls.__annotations__) & set(cls.model_fields)


@pytest.mark.parametrize(
    ("section", "run", "hyper"),
    [(SFTSection, SFTRunConfig, SFTHyper), (RLSection, RLRunConfig, RLHyper)],
)
def test_no_knob_is_declared_twice(section, run, hyper):
    assert set(hyper.model_fields) <= set(section.model_fields) & set(run.model_fields)
    # neither the section nor the run config re-declares a shared field ...
    assert not _own_fields(section) & set(hyper.model_fields)
    assert not _own_fields(run) & set(hyper.model_fields)
    # ... and what both declare on their own is only what means something else in each:
    # the experiment's model preset ('smollm2') vs a path, a task count vs a tasks file,
    # a sampler kind vs sampler settings
    assert _own_fields(section) & _own_fields(run) <= {"model", "tasks", "sampler"}
    # every TRL field a knob sets is a real field of TRL's config class
    from searchprime.train.hyper import trl_config_fields

    knobs = {trl_name(f) for f in hyper.model_fields.values()} - {None}
    assert knobs and knobs <= trl_config_fields(hyper.trl_config)
    assert issubclass(hyper, Hyper)


def _sample(section: type[BaseModel], name: str, base: dict[str, Any]) -> Any:
    default = getattr(section.model_validate(base), name)
    for value in CANDIDATES:
        try:
            got = getattr(section.model_validate({**base, name: value}), name)
        except ValidationError:
            continue
        if got != default:
            return got
    raise AssertionError(f"no candidate value fits {section.__name__}.{name}")


def _trl_value(args: Any, field: str) -> Any:
    value = getattr(args, field)
    return list(value) if isinstance(value, (list, tuple)) else value


def _effective(value: Any) -> Any:
    return [value] if value in ("tensorboard", "wandb") else value


def test_every_sft_knob_set_in_the_study_reaches_the_run(tmp_path):
    from searchprime.train.sft import _sft_config

    dirs = {"base": tmp_path / "db", "primed": tmp_path / "dp"}
    for name in SFTHyper.model_fields:
        value = _sample(SFTSection, name, {})
        cfg = ExperimentConfig.model_validate({"sft": {name: value}, "arms": [{"name": "primed"}]})
        run = sft_run_config(cfg, "primed", tmp_path / "m", dirs, tmp_path / "o")
        if name == "trl":
            assert value.items() <= run.trl.items()
        else:
            assert getattr(run, name) == value, name
        args = _sft_config(run, assistant_only=False)
        field = trl_name(SFTHyper.model_fields[name])
        if field is not None:
            assert _trl_value(args, field) == _effective(value), name
        for key, v in (value if name == "trl" else {}).items():
            assert getattr(args, key) == v
    # the study's own defaults, and an arm's epochs and learning rate over the section's
    cfg = ExperimentConfig.model_validate(
        {"arms": [{"name": "primed", "epochs": 5, "learning_rate": 3e-5}]}
    )
    base = sft_run_config(cfg, "base", "m", dirs, tmp_path / "o")
    assert (base.epochs, base.learning_rate, base.batch_size, base.max_length) == (
        2.0,
        1e-4,
        8,
        1536,
    )
    assert base.data == str(dirs["base"])
    arm = sft_run_config(cfg, "primed", "m", dirs, tmp_path / "o")
    assert (arm.epochs, arm.learning_rate, arm.data) == (5, 3e-5, str(dirs["primed"]))
    # mix_base: the arm's own data, then the base model's
    cfg = ExperimentConfig.model_validate({"arms": [{"name": "primed", "mix_base": True}]})
    mixed = sft_run_config(cfg, "primed", "m", dirs, tmp_path / "o")
    assert mixed.data == [str(dirs["primed"]), str(dirs["base"])]


def test_every_rl_knob_set_in_the_study_reaches_the_run(tmp_path):
    from searchprime.rl.grpo import grpo_config

    base = {"tasks_per_step": 2, "num_generations": 4}
    for name in RLHyper.model_fields:
        value = _sample(RLSection, name, base)
        cfg = ExperimentConfig.model_validate({"rl": {**base, name: value}})
        run = rl_run_config(
            cfg, tmp_path / "m", tmp_path / "rl", tasks=tmp_path / "t", index_dir=tmp_path / "i"
        )
        got = getattr(run, name)
        if name == "trl":
            assert value.items() <= got.items()
        else:
            assert (got.model_dump() if isinstance(got, BaseModel) else got) == (
                value.model_dump() if isinstance(value, BaseModel) else value
            ), name
        args = grpo_config(run)
        field = trl_name(RLHyper.model_fields[name])
        if field is not None:
            assert _trl_value(args, field) == _effective(value), name
    # tasks_per_step and micro_batch: 3 tasks x 4 episodes in passes of 2 -> 6 passes a step
    cfg = ExperimentConfig.model_validate(
        {"rl": {"tasks_per_step": 3, "num_generations": 4, "micro_batch": 2}}
    )
    run = rl_run_config(cfg, tmp_path, tmp_path / "rl", tasks=tmp_path, index_dir=tmp_path)
    args = grpo_config(run)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 6)
    assert run.sampler.max_batch == 12 and run.concurrency == 12


def _load(tmp_path: Path, text: str) -> ExperimentConfig:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return load_config(ExperimentConfig, path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "sft: {trl: {warmup_stepz: 3}}",
            r"study.yaml: sft.trl: .*warmup_stepz: not a trl.SFTConfig field "
            r"\(did you mean 'warmup_steps'\?\)",
        ),
        ("sft: {trl: {num_train_epochs: 3}}", r"sft.trl: .*num_train_epochs: set it as sft.epochs"),
        ("sft: {trl: {report_to: wandb}}", r"sft.trl: .*report_to: set it as sft.report_to"),
        ("sft: {trl: {output_dir: x}}", r"sft.trl: .*output_dir: set by searchprime"),
        ("sft: {report_to: mlflow}", r"sft.report_to"),
        ("rl: {trl: {warmup_stepz: 3}}", r"rl.trl: .*warmup_stepz: not a trl.GRPOConfig field"),
        ("rl: {trl: {beta: 0.1}}", r"rl.trl: .*beta: set it as rl.beta"),
    ],
)
def test_bad_trl_fields_fail_when_the_study_loads(tmp_path, text, problem):
    with pytest.raises(ConfigError, match=problem):
        _load(tmp_path, text)


def test_report_to_is_left_out_of_the_saved_study_unless_set(tmp_path):
    """A study saved before report_to existed still resumes: its default is not written."""
    assert "report_to" not in ExperimentConfig(rl={}).model_dump()["sft"]
    assert "report_to" not in ExperimentConfig(rl={}).model_dump()["rl"]
    cfg = _load(tmp_path, "sft: {report_to: tensorboard}\nrl: {report_to: [wandb]}\n")
    assert cfg.model_dump()["sft"]["report_to"] == "tensorboard"
    assert cfg.rl is not None and cfg.rl.report_to == ["wandb"]
