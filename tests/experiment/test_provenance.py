"""Which weights wrote each evaluation file, and whether the weights at hand may finish an
unfinished one (``experiment.provenance`` and ``Study._extend_or_set_aside``)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from searchprime.experiment import ExperimentConfig
from searchprime.experiment.provenance import (
    read_stamps,
    same_weights,
    stamp,
    stamp_file,
    training_outcome,
    weights_id,
)
from searchprime.experiment.study import Study
from searchprime.report.model import ArmSummary
from tests.experiment.test_carry import TINY


def _weights(model_dir: Path, value: float) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.full((4, 4), value)}, str(model_dir / "model.safetensors"))
    return model_dir


def test_weights_id_names_the_bits(tmp_path):
    a = _weights(tmp_path / "a", 1.0)
    assert weights_id(a) == weights_id(_weights(tmp_path / "a2", 1.0))
    assert weights_id(a) != weights_id(_weights(tmp_path / "b", 2.0))
    assert len(weights_id(a) or "") == 16
    (tmp_path / "empty").mkdir()
    assert weights_id(tmp_path / "empty") is None


def test_stamps_are_written_read_and_dropped_by_kind(tmp_path):
    ev, model = tmp_path / "eval", _weights(tmp_path / "m", 1.0)
    stamp(ev, "base", ("rollouts", "entropy"), model)
    wid = weights_id(model)
    assert read_stamps(ev, "base") == {"rollouts": wid, "entropy": wid}
    assert same_weights(ev, "base", "rollouts", model) is True
    assert same_weights(ev, "base", "rollouts", _weights(tmp_path / "o", 3.0)) is False
    assert same_weights(ev, "base", "samples", model) is None  # never stamped
    stamp(ev, "base", "rollouts", None)
    assert read_stamps(ev, "base") == {"entropy": wid}
    stamp(ev, "base", "entropy", None)
    assert not stamp_file(ev, "base").exists()  # no stamps left: no file
    with pytest.raises(ValueError, match="unknown evaluation kinds \\['greedy'\\]"):
        stamp(ev, "base", "greedy", model)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"rollouts": 3, "bogus": "x"}'])
def test_a_stamp_file_that_does_not_parse_stamps_nothing(tmp_path, text):
    ev = tmp_path / "eval"
    ev.mkdir()
    stamp_file(ev, "base").write_text(text)
    assert read_stamps(ev, "base") == {}


def test_training_outcome_leaves_out_what_describes_the_run(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    made = {"steps": 76, "first_loss": 1.9564871788024902, "train_loss": 0.18085786224784037}
    one.write_text(json.dumps({**made, "runtime_s": 1667.9, "resumed_from": None}))
    two.write_text(json.dumps({**made, "runtime_s": 613.0, "resumed_from": "ckpt-30"}))
    assert training_outcome(one) == training_outcome(two) == made
    two.write_text(json.dumps({**made, "train_loss": 0.1808578622478405}))
    assert training_outcome(one) != training_outcome(two)
    assert training_outcome(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("[]")
    assert training_outcome(tmp_path / "bad.json") is None


# -- the runner's rule: one unfinished file, one set of weights ---------------------------


def _study(tmp_path: Path) -> tuple[Study, Path, list[str]]:
    logs: list[str] = []
    study = Study(ExperimentConfig.model_validate(TINY), tmp_path / "out", log=logs.append)
    ev = study.out / "eval"
    ev.mkdir(parents=True)
    (ev / "base.jsonl").write_text('{"first": 1}\n')
    return study, ev, logs


def test_stamped_by_these_weights_the_file_goes_on(tmp_path):
    study, ev, logs = _study(tmp_path)
    model = _weights(tmp_path / "m", 1.0)
    stamp(ev, "base", "rollouts", model)
    study.trained_again["base"] = (tmp_path / "none.json", None)  # the stamp outranks this
    study._extend_or_set_aside("base", "rollouts", model)
    assert (ev / "base.jsonl").read_text() == '{"first": 1}\n' and not logs


def test_stamped_by_other_weights_the_file_and_its_carried_copy_are_set_aside(tmp_path):
    study, ev, logs = _study(tmp_path)
    stamp(ev, "base", ("rollouts", "entropy"), _weights(tmp_path / "first", 1.0))
    carried = tmp_path / "carry"
    (carried / "eval").mkdir(parents=True)
    for name in ("base.jsonl", "base.weights.json"):
        (carried / "eval" / (name + ".gz")).write_bytes(gzip.compress(b"x"))

    class _Carry:
        dest = carried

    study.carry = _Carry()
    now = _weights(tmp_path / "second", 2.0)
    study._extend_or_set_aside("base", "rollouts", now)
    assert not (ev / "base.jsonl").exists()
    assert (ev / "stale/base.jsonl").read_text() == '{"first": 1}\n'
    assert not (carried / "eval/base.jsonl.gz").exists()
    assert not (carried / "eval/base.weights.json.gz").exists()  # the next sync writes it anew
    assert read_stamps(ev, "base") == {"entropy": weights_id(tmp_path / "first")}
    assert any("set aside base.jsonl" in m and "by other weights" in m for m in logs)


def _summary(path: Path, loss: float) -> Path:
    path.write_text(json.dumps({"steps": 3, "train_loss": loss, "runtime_s": loss * 7}))
    return path


def test_an_unstamped_file_goes_on_when_its_model_was_not_trained_again(tmp_path):
    study, ev, logs = _study(tmp_path)
    study._extend_or_set_aside("base", "rollouts", _weights(tmp_path / "m", 1.0))
    assert (ev / "base.jsonl").exists() and not logs


def test_an_unstamped_file_goes_on_when_its_model_trained_again_as_before(tmp_path):
    """A prompt arm's file goes by its model's training."""
    study, ev, logs = _study(tmp_path)
    (ev / "handbook.jsonl").write_text('{"first": 2}\n')
    summary = _summary(tmp_path / "searchprime_sft.json", 0.25)
    study.trained_again["base"] = (summary, training_outcome(summary))
    summary.write_text(json.dumps({"steps": 3, "train_loss": 0.25, "runtime_s": 99.0}))
    study._extend_or_set_aside("handbook", "rollouts", _weights(tmp_path / "m", 1.0))
    assert (ev / "handbook.jsonl").exists()
    assert any("handbook's unfinished rollouts predate weight stamps" in m for m in logs)
    assert any("as before, step for step" in m for m in logs)


def test_an_unstamped_file_is_set_aside_when_its_model_trained_again_otherwise(tmp_path):
    study, ev, logs = _study(tmp_path)
    summary = _summary(tmp_path / "searchprime_sft.json", 0.25)
    study.trained_again["base"] = (summary, training_outcome(summary))
    _summary(summary, 0.26)
    study._extend_or_set_aside("base", "rollouts", _weights(tmp_path / "m", 1.0))
    assert (ev / "stale/base.jsonl").exists() and not (ev / "base.jsonl").exists()
    # no summary before the training again: nothing shows the same path was taken
    (ev / "base.jsonl").write_text('{"first": 1}\n')
    study.trained_again["base"] = (summary, None)
    study._extend_or_set_aside("base", "rollouts", _weights(tmp_path / "m", 1.0))
    assert not (ev / "base.jsonl").exists()


# -- the report says when one model's files come from two trainings ------------------------


def test_other_trainings_name_the_kinds_unlike_the_rollouts():
    arm = ArmSummary(name="base", n=2, weights={"rollouts": "a", "entropy": "a", "samples": "b"})
    assert arm.other_trainings() == ["samples"]
    assert ArmSummary(
        name="b", n=2, weights={"entropy": "a", "samples": "b"}
    ).other_trainings() == ["samples"]
    assert ArmSummary(name="b", n=2, weights={"samples": "b"}).other_trainings() == []
    assert ArmSummary(name="b", n=2).other_trainings() == []
