"""`train sft` / `train rl` flags override whichever spelling the YAML uses for a knob."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchprime.cli.train_cmd import _as_file_spells
from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.rl.config import RLRunConfig
from searchprime.train.sft import SFTRunConfig


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text("model: m\ndata: d\noutput_dir: o\n" + text)
    return path


def test_a_flag_overrides_the_knob_the_yaml_sets(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "learning_rate: 1.0e-4\nepochs: 1\n")
    flags = {"trl.learning_rate": 3e-4, "trl.num_train_epochs": None, "trl.seed": 5}
    with pytest.raises(ConfigError, match="learning_rate"):  # both spellings: refused
        load_config(SFTRunConfig, path, flags)
    cfg = load_config(SFTRunConfig, path, _as_file_spells(flags, SFTRunConfig, path))
    assert cfg.learning_rate == 3e-4 and cfg.epochs == 1 and cfg.trl["seed"] == 5
    assert "learning_rate" not in cfg.trl


def test_a_flag_overrides_the_trl_spelling_the_yaml_uses(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "trl: {learning_rate: 1.0e-4}\n")
    flags = {"trl.learning_rate": 3e-4}
    assert _as_file_spells(flags, SFTRunConfig, path) == flags
    cfg = load_config(SFTRunConfig, path, _as_file_spells(flags, SFTRunConfig, path))
    assert cfg.trl["learning_rate"] == 3e-4 and cfg.learning_rate is None


def test_rl_flags_follow_the_same_rule(tmp_path: Path) -> None:
    path = tmp_path / "rl.yaml"
    path.write_text("model: m\ntasks: t\noutput_dir: o\nsearch: {kind: bm25, path: i}\n"
                    "num_generations: 4\nmax_steps: 3\n")  # fmt: skip
    flags = {"trl.num_generations": 8, "trl.max_steps": None}
    cfg = load_config(RLRunConfig, path, _as_file_spells(flags, RLRunConfig, path))
    assert cfg.num_generations == 8 and cfg.max_steps == 3
