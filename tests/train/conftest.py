"""Fixtures for SFT tests: a tiny model and primed data (turn and trajectory shapes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))

from sp_trajs import make_traj, population  # noqa: E402

from searchprime.data.prime import prime  # noqa: E402
from searchprime.data.select import SelectionConfig  # noqa: E402
from searchprime.records import write_jsonl  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    # The CPU is shared: one thread per process is several times faster than two here.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from searchprime.train.models import init_tiny

    return init_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def trajs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trajs") / "trajs.jsonl"
    extra = make_traj(
        "inv",
        steps=[("search", "a"), ("invalid", "x"), ("search", "b"), ("answer", "Paris")],
        behaviors=set(),
    )
    write_jsonl(path, population()[:12] + [extra])
    return path


@pytest.fixture(scope="session")
def turn_data(trajs_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("turn")
    prime([trajs_file], SelectionConfig(strategy="random"), out, shape="turn")
    return out


@pytest.fixture(scope="session")
def traj_data(trajs_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("traj")
    prime([trajs_file], SelectionConfig(strategy="random"), out, shape="trajectory")
    return out
