"""Fixtures of the RL tests: the toy search task, its tiny policy and an SFT'd 50/50 policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .toy import Toy, make_toy


@contextmanager
def one_thread() -> Iterator[None]:
    """The tiny model's matrices are too small for two threads: on a busy 2-core machine one
    thread trained it 6x faster (13 s vs 85 s for the toy SFT under load 4)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> Toy:
    """The toy world (corpus, BM25 index, tasks) and an untrained tiny policy."""
    return make_toy(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def toy_policy(toy: Toy) -> Path:
    """The tiny policy fine-tuned on the 50/50 mix (search first / answer at once)."""
    out = toy.root / "sft_policy"
    if not (out / "searchprime_sft.json").exists():
        with one_thread():
            _sft(toy, out)
    return out


def _sft(toy: Toy, out: Path) -> None:
    from searchprime.train.sft import SFTRunConfig, run_sft

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
