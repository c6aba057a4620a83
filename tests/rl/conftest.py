"""Fixtures of the RL tests: the toy search task, its tiny policy and an SFT'd 50/50 policy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from toy import Toy, make_toy  # noqa: E402


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> Toy:
    """The toy world (corpus, BM25 index, tasks) and an untrained tiny policy."""
    return make_toy(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def toy_policy(toy: Toy) -> Path:
    """The tiny policy fine-tuned on the 50/50 mix (search first / answer at once)."""
    from searchprime.train.sft import SFTRunConfig, run_sft

    out = toy.root / "sft_policy"
    if not (out / "searchprime_sft.json").exists():
        run_sft(
            SFTRunConfig(
                model=str(toy.model),
                data=str(toy.sft_data),
                output_dir=str(out),
                trl={
                    "num_train_epochs": 25,
                    "learning_rate": 3e-3,
                    "per_device_train_batch_size": 8,
                    "save_strategy": "no",
                    "use_cpu": True,
                    "bf16": False,
                    "disable_tqdm": True,
                    "seed": 0,
                },
            )
        )
    return out
