"""The SFT run config: knobs and ``trl`` say each TRL field once, and ``trl`` is checked when
the YAML loads (not inside the run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.train.sft import _sft_config
from searchprime.train.sft_config import SFTRunConfig

REPO = Path(__file__).resolve().parents[2]
BASE = {"model": "m", "data": "d", "output_dir": "o"}


@pytest.mark.parametrize(
    ("trl", "problem"),
    [
        ({"num_train_epoch": 2}, r"num_train_epoch: not a trl.SFTConfig field \(did you mean "),
        ({"completion_only_loss": False}, r"completion_only_loss: set by searchprime"),
        ({"report_to": "wandb"}, r"report_to: set it as report_to, not in trl"),
    ],
)
def test_bad_trl_fields_fail_when_the_yaml_loads(tmp_path, trl, problem):
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump({**BASE, "trl": trl}))
    with pytest.raises(ConfigError, match=rf"sft.yaml: trl: .*{problem}"):
        load_config(SFTRunConfig, path)


def test_a_knob_and_its_trl_field_give_the_same_sft_config():
    """Either spelling trains the same run (and fingerprints the same: resume keeps working)."""
    by_trl = SFTRunConfig(
        **BASE,
        trl={
            "num_train_epochs": 4,
            "learning_rate": 3e-4,
            "per_device_train_batch_size": 2,
            "max_length": 640,
        },
    )
    by_knob = SFTRunConfig(**BASE, epochs=4, learning_rate=3e-4, batch_size=2, max_length=640)
    args = _sft_config(by_knob, assistant_only=False)
    assert args.to_dict() == _sft_config(by_trl, assistant_only=False).to_dict()
    assert (args.num_train_epochs, args.per_device_train_batch_size, args.max_length) == (4, 2, 640)
    with pytest.raises(ValidationError, match=r"num_train_epochs: set it as epochs, not in trl"):
        SFTRunConfig(**BASE, epochs=1, trl={"num_train_epochs": 2})


def test_unset_knobs_keep_the_run_defaults():
    args = _sft_config(SFTRunConfig(**BASE), assistant_only=False)
    assert args.max_length == 2048 and args.report_to == []  # ours; 'none' reports nowhere
    assert args.num_train_epochs == 3 and args.learning_rate == 2e-5  # TRL's


def test_the_documented_config_still_loads():
    cfg = load_config(SFTRunConfig, REPO / "docs" / "sft" / "sft_smollm2_cpu.yaml")
    assert cfg.trl["num_train_epochs"] == 2 and cfg.epochs is None
