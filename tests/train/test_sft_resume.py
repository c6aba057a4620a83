"""`train sft` killed with SIGKILL resumes on the same command; other settings are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from searchprime.errors import ResumeError
from searchprime.train.fingerprint import diff_settings, file_digest
from searchprime.train.resume import last_checkpoint, plan_run
from searchprime.train.sft import SETTINGS_FILE, SUMMARY_FILE, SFTSummary, whole_run_loss

STEPS = 10


def _command(
    model: Path, data: Path, out: Path, cfg: Path, *extra: str, steps: int = STEPS
) -> list[str]:
    args = ["train", "sft", "--model", str(model), "--data", str(data), "--out", str(out)]
    args += ["--config", str(cfg), "--max-steps", str(steps), "--save-steps", "2"]
    return args + [
        "--batch-size",
        "2",
        "--max-length",
        "512",
        "--lr",
        "3e-3",
        "--seed",
        "0",
        *extra,
    ]


def _cli(args: list[str]):
    from searchprime.cli.main import app

    return CliRunner().invoke(app, args)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _kill_after_first_checkpoint(args: list[str], out: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = "from searchprime.cli.main import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while last_checkpoint(out) is None and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        rc = proc.wait(30)
    return rc


@pytest.mark.slow
def test_kill_then_same_command_resumes_to_the_same_weights(
    tiny_model: Path, turn_data: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("trl: {bf16: false, logging_steps: 1, save_total_limit: 3}\n")
    ref_out, out = tmp_path / "ref", tmp_path / "run"

    res = _cli(_command(tiny_model, turn_data, ref_out, cfg))
    assert res.exit_code == 0, res.output
    ref = SFTSummary.model_validate_json((ref_out / SUMMARY_FILE).read_text())
    assert ref.steps == STEPS and ref.start_step == 0 and ref.run_tokens == ref.tokens_seen

    args = _command(tiny_model, turn_data, out, cfg)
    assert _kill_after_first_checkpoint(args, out) == -signal.SIGKILL
    assert not (out / SUMMARY_FILE).exists(), "the run finished before it was killed"
    resumed_at = int(Path(last_checkpoint(out)).name.split("-")[1])
    assert 2 <= resumed_at < STEPS

    res = _cli(args)  # the same command
    assert res.exit_code == 0, res.output
    assert f"resuming from {out / f'checkpoint-{resumed_at}'}" in res.output
    s = SFTSummary.model_validate_json((out / SUMMARY_FILE).read_text())
    assert (s.start_step, s.steps, s.steps_run) == (resumed_at, STEPS, STEPS - resumed_at)
    got, want = _weights(out), _weights(ref_out)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=0, atol=1e-6), name
    # summaries: the whole run's loss and tokens; speed over this process's tokens only
    assert s.train_loss == pytest.approx(ref.train_loss, rel=1e-5)
    assert s.tokens_seen == ref.tokens_seen and 0 < s.run_tokens < s.tokens_seen
    assert s.tokens_per_s == pytest.approx(s.run_tokens / s.runtime_s)
    assert s.first_loss == pytest.approx(ref.first_loss, rel=1e-5)

    # a finished run is not trained again
    res = _cli(args)
    assert res.exit_code == 0 and "already finished" in res.output

    # other settings are refused, naming the setting, and nothing is touched
    res = _cli(_command(tiny_model, turn_data, out, cfg, "--lr", "1e-3"))
    assert isinstance(res.exception, ResumeError), res.output
    assert "trl.learning_rate: 0.003 then, 0.001 now" in str(res.exception)
    assert "--overwrite" in str(res.exception)
    assert (out / SUMMARY_FILE).exists()

    # --overwrite starts over at step 0 with the new settings
    res = _cli(_command(tiny_model, turn_data, out, cfg, "--lr", "1e-3", "--overwrite", steps=2))
    assert res.exit_code == 0, res.output
    s = SFTSummary.model_validate_json((out / SUMMARY_FILE).read_text())
    assert s.start_step == 0 and s.resumed_from is None and s.steps == 2
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    stored = json.loads((out / SETTINGS_FILE).read_text())
    assert stored["trl"]["learning_rate"] == 1e-3


def test_plan_run_rules(tmp_path: Path) -> None:
    out = tmp_path / "o"
    settings = {"data": {"sha256": "a"}, "trl": {"max_steps": 4, "learning_rate": 1.0}}
    kw = {"settings_file": "s.json", "finished_file": "done.json", "length_keys": ["trl.max_steps"]}
    assert plan_run(out, settings, **kw).checkpoint is None  # empty folder: a fresh start
    with pytest.raises(ResumeError, match="no checkpoint to resume"):
        plan_run(out, settings, resume=True, **kw)
    # a checkpoint killed mid-save (no trainer_state.json) is skipped
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (out / "checkpoint-4").mkdir()
    (out / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')
    assert plan_run(out, settings, **kw).checkpoint == str(out / "checkpoint-2")
    # other data: refused, naming the field
    other = {**settings, "data": {"sha256": "b"}}
    with pytest.raises(ResumeError, match=r'data.sha256: "a" then, "b" now'):
        plan_run(out, other, **kw)
    with pytest.raises(ResumeError, match="data.sha256"):
        plan_run(out, other, resume=True, **kw)
    # a longer run: only with an explicit resume
    longer = {**settings, "trl": {"max_steps": 8, "learning_rate": 1.0}}
    with pytest.raises(ResumeError, match="trl.max_steps: 4 then, 8 now"):
        plan_run(out, longer, **kw)
    plan = plan_run(out, longer, resume=True, **kw)
    assert plan.checkpoint == str(out / "checkpoint-2") and plan.changed == ("trl.max_steps",)
    assert json.loads((out / "s.json").read_text())["trl"]["max_steps"] == 8
    # finished: nothing to do; resume off with a run in the folder: refused
    (out / "done.json").write_text("{}")
    assert plan_run(out, longer, **kw).finished
    with pytest.raises(ResumeError, match="resume is off"):
        plan_run(out, longer, resume=False, **kw)
    with pytest.raises(ResumeError, match="exclude"):
        plan_run(out, longer, resume=True, overwrite=True, **kw)
    # overwrite clears checkpoints and records
    assert plan_run(out, other, overwrite=True, **kw).checkpoint is None
    assert not list(out.glob("checkpoint-*")) and not (out / "done.json").exists()
    # checkpoints without a settings record (an older run): only an explicit resume
    (out / "s.json").unlink()
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    with pytest.raises(ResumeError, match="without a record"):
        plan_run(out, settings, **kw)
    assert plan_run(out, settings, resume=True, **kw).checkpoint == str(out / "checkpoint-2")


def test_whole_run_loss_and_fingerprints(tmp_path: Path) -> None:
    history = [{"loss": 2.0, "step": 1}, {"loss": 1.0, "step": 4}, {"train_loss": 9, "step": 4}]
    # steps 1..4 logged (2 + 3*1 = 5), steps 5..6 run here with mean 0.5
    assert whole_run_loss(history, 4, 0.5, 2) == pytest.approx((5 + 1) / 6)
    assert whole_run_loss(history, 5, 0.5, 1) is None  # step 5 was never logged
    assert whole_run_loss([], 0, 0.7, 3) == pytest.approx(0.7)
    small = tmp_path / "a.bin"
    small.write_bytes(b"x" * 100)
    assert file_digest(small) == file_digest(small) and file_digest(small)["bytes"] == 100
    big = tmp_path / "b.bin"
    big.write_bytes(bytes(3 * 2**20))
    before = file_digest(big, full_up_to=2**20)
    assert "sha256_sampled" in before
    with big.open("r+b") as f:  # a change in a sampled region (the head) is seen
        f.write(b"\x01")
    assert diff_settings({"m": before}, {"m": file_digest(big, full_up_to=2**20)})


def test_prune_checkpoints_only_once_the_run_is_finished(tmp_path: Path) -> None:
    from searchprime.train.resume import prune_checkpoints

    for step, complete in ((2, True), (4, True), (6, False)):  # 6: killed while saving
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "optimizer.pt").write_bytes(b"x" * 1000)
        if complete:
            (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-notes").mkdir()  # not a checkpoint name: never touched
    (tmp_path / "model.safetensors").write_bytes(b"w")
    # not finished: every checkpoint stays, the last complete one is what a resume needs
    assert prune_checkpoints(tmp_path, SUMMARY_FILE) == 0
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    (tmp_path / SUMMARY_FILE).write_text("{}")
    freed = prune_checkpoints(tmp_path, SUMMARY_FILE)
    assert freed == 3 * 1000 + 2 * len(json.dumps({"global_step": 2}))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint-notes", "model.safetensors", SUMMARY_FILE]
    )
    assert prune_checkpoints(tmp_path, SUMMARY_FILE) == 0
