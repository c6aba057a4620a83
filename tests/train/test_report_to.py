"""``report_to``: a tiny SFT logs its loss to TensorBoard event files and to an offline wandb run
under its output folder (nothing leaves the machine: the suite refuses non-loopback sockets)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from searchprime.train.sft import SFTRunConfig, run_sft

FAST = {"max_steps": 3, "logging_steps": 1, "seed": 0, "save_strategy": "no"}


def _cfg(model: Path, data: Path, out: Path, report_to) -> SFTRunConfig:
    return SFTRunConfig(
        model=str(model),
        data=str(data),
        output_dir=str(out),
        batch_size=4,
        max_length=512,
        report_to=report_to,
        trl=FAST,
    )


def tensorboard_scalars(root: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of ``tag`` in the event files under ``root``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = []
    for events in sorted(root.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            points += [(e.step, e.value) for e in acc.Scalars(tag)]
    return points


def _wandb_records(log: Path) -> list[bytes]:
    """The records of a ``.wandb`` log (LevelDB's log format after a 7-byte ``:W&B`` header:
    32 KiB blocks of chunks, each ``crc32c(4) length(2, LE) type(1)``; wandb ships no reader)."""
    data = log.read_bytes()
    assert data[:4] == b":W&B"
    records, parts, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's zero-filled tail
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, LAST
            records.append(parts)
            parts = b""
    return records


def wandb_history(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of ``key`` in the history records of an offline wandb run's log."""
    from wandb.proto import wandb_internal_pb2

    (log,) = run_dir.glob("run-*.wandb")
    points = []
    for data in _wandb_records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") != "history":
            continue
        items = {
            i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item
        }
        if key in items:
            points.append((items["train/global_step"], items[key]))
    return points


def test_tensorboard_gets_the_loss_of_every_logged_step(tiny_model, turn_data, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "sft"
    s = run_sft(_cfg(tiny_model, turn_data, out, "tensorboard"))
    points = tensorboard_scalars(out / "runs", "train/loss")
    assert [step for step, _ in points] == [1, 2, 3]
    assert points[0][1] == pytest.approx(s.first_loss, rel=1e-5)
    assert points[-1][1] == pytest.approx(s.last_loss, rel=1e-5)
    assert s.first_loss != s.last_loss  # three different steps, not one value thrice


def test_no_tracker_by_default(tiny_model, turn_data, tmp_path):
    out = tmp_path / "sft"
    run_sft(_cfg(tiny_model, turn_data, out, "none"))
    assert not (out / "runs").exists() and not (out / "wandb").exists()


def test_wandb_writes_an_offline_run_with_the_loss(tiny_model, turn_data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "sft"
    s = run_sft(_cfg(tiny_model, turn_data, out, ["tensorboard", "wandb"]))
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    points = wandb_history(run_dir, "train/loss")
    assert [step for step, _ in points] == [1, 2, 3]
    assert points[0][1] == pytest.approx(s.first_loss, rel=1e-6)
    assert points[-1][1] == pytest.approx(s.last_loss, rel=1e-6)
    assert len(tensorboard_scalars(out / "runs", "train/loss")) == 3  # both trackers at once
    # the run is finished and the environment as it was: the next run starts its own
    assert "WANDB_MODE" not in os.environ and "WANDB_DIR" not in os.environ
    import wandb

    assert wandb.run is None
    # a second run of this process (as a study's base, arms and RL) gets its own offline run
    run_sft(_cfg(tiny_model, turn_data, tmp_path / "again", "wandb"))
    (again,) = (tmp_path / "again" / "wandb").glob("offline-run-*")
    assert len(wandb_history(again, "train/loss")) == 3
    assert list((out / "wandb").glob("offline-run-*")) == [run_dir]


def test_a_missing_tracker_names_the_extra(tiny_model, turn_data, tmp_path, monkeypatch):
    import sys

    from searchprime.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(MissingExtraError, match="track"):
        run_sft(_cfg(tiny_model, turn_data, tmp_path / "sft", "tensorboard"))
