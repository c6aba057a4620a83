"""SFT on the tiny fixture: label masking, packing, a real short run, LoRA, resume, errors."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from searchprime.errors import ConfigError, RecordError, ResumeError
from searchprime.train.sft import (
    SUMMARY_FILE,
    SFTRunConfig,
    build_trainer,
    run_sft,
    train_sft,
)
from searchprime.train.sft_data import merge_turn_rows, segment_ids

FAST = {"per_device_train_batch_size": 4, "max_length": 512, "logging_steps": 1, "seed": 0}


def cfg(model, data, out, **trl) -> SFTRunConfig:
    return SFTRunConfig(model=str(model), data=str(data), output_dir=str(out), trl={**FAST, **trl})


def labelled_text(tok, row) -> str:
    return tok.decode(
        [i for i, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != -100]
    )


def completions(data) -> list[dict]:
    lines = (data / "train.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_turn_labels_cover_only_the_output(tiny_model, turn_data, tmp_path) -> None:
    built = build_trainer(cfg(tiny_model, turn_data, tmp_path))
    assert not built.assistant_only
    rows = completions(turn_data)
    ds = built.trainer.train_dataset
    assert len(ds) == len(rows)
    for row, src in zip(ds, rows, strict=True):
        assert (
            labelled_text(built.tokenizer, row) == src["completion"][0]["content"] + "<|im_end|>\n"
        )
    batch = built.trainer.data_collator([ds[i] for i in range(4)])
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        text = built.tokenizer.decode(ids[labels != -100])
        assert "Question:" not in text and "<information>" not in text and "system" not in text
        assert text.startswith("<think>")


def test_trajectory_labels_skip_observations(tiny_model, traj_data, tmp_path) -> None:
    # the export holds one row per assistant turn (safe under TRL's defaults); train sft folds
    # each segment back into one row trained with assistant-only loss (same loss, fewer tokens)
    exported = completions(traj_data)
    assert all([m["role"] for m in r["completion"]] == ["assistant"] for r in exported)
    built = build_trainer(cfg(tiny_model, traj_data, tmp_path))
    assert built.assistant_only
    rows, merged = merge_turn_rows(
        exported,
        lambda msgs: built.tokenizer.apply_chat_template(msgs, tokenize=False),
        segment_ids(traj_data, len(exported)),
    )
    assert 0 < merged and len(rows) == len(built.trainer.train_dataset) < len(exported)
    batch = built.trainer.data_collator([built.trainer.train_dataset[i] for i in range(len(rows))])
    for ids, labels, src in zip(batch["input_ids"], batch["labels"], rows, strict=True):
        outputs = [
            m["content"] + "<|im_end|>" for m in src["completion"] if m["role"] == "assistant"
        ]
        assert built.tokenizer.decode(ids[labels != -100]) == "".join(outputs)
        # every observation token is in the input but carries no label
        if any(m["role"] == "user" for m in src["completion"]):
            assert "<information>" in built.tokenizer.decode(ids)
    assert any(len(src["completion"]) >= 3 for src in rows)


def test_packing_keeps_samples_apart(tiny_model, turn_data, tmp_path) -> None:
    plain = build_trainer(cfg(tiny_model, turn_data, tmp_path))
    packed = build_trainer(cfg(tiny_model, turn_data, tmp_path, packing=True, max_length=1024))
    ds = packed.trainer.train_dataset
    assert len(ds) < len(plain.trainer.train_dataset) and "seq_lengths" in ds.column_names
    # the same labelled tokens, just regrouped
    count = sum(sum(1 for x in r["labels"] if x != -100) for r in plain.trainer.train_dataset)
    batch = packed.trainer.data_collator([ds[i] for i in range(len(ds))])
    assert "attention_mask" not in batch and "position_ids" in batch
    # the first token of every packed sequence never gets a label across a boundary
    assert int((batch["labels"] != -100).sum()) == count
    # block-diagonal attention through TRL's own loss path: packed and padded batches of the
    # same samples give the same mean loss only if no token attends across a sample boundary
    padded = plain.trainer.data_collator(list(plain.trainer.train_dataset))
    model = plain.trainer.model.eval()
    with torch.no_grad():
        loss_padded = plain.trainer.compute_loss(model, dict(padded))
        loss_packed = packed.trainer.compute_loss(model, dict(batch))
    assert torch.allclose(loss_padded, loss_packed, atol=1e-4)
    # and the model really mixes sequences when positions do not restart (sanity of the check)
    flat = dict(batch)
    flat["position_ids"] = torch.arange(batch["input_ids"].shape[1])[None]
    with torch.no_grad():
        assert not torch.allclose(packed.trainer.compute_loss(model, flat), loss_padded, atol=1e-4)


def test_short_run_lowers_loss_and_reloads(tiny_model, turn_data, tmp_path) -> None:
    out = tmp_path / "sft"
    s = run_sft(cfg(tiny_model, turn_data, out, max_steps=12, learning_rate=3e-3))
    assert s.steps == 12 and s.last_loss < s.first_loss and s.tokens_seen > 0
    assert json.loads((out / SUMMARY_FILE).read_text())["steps"] == 12
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert "{% generation %}" in tok.chat_template
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Question: x"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    gen = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] > ids.shape[1]


def test_lora_run_saves_merged_model(tiny_model, turn_data, tmp_path) -> None:
    from searchprime.train.sft import LoraSettings

    out = tmp_path / "lora"
    c = cfg(tiny_model, turn_data, out, max_steps=3, learning_rate=1e-2)
    c.lora = LoraSettings(r=4, alpha=8)
    path = train_sft(c)  # the DEVNOTES API: returns the output folder
    assert path == out
    s = json.loads((out / SUMMARY_FILE).read_text())
    assert s["lora"] and s["steps"] == 3
    assert (out / "adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert not any("lora" in k for k in merged.state_dict())
    diffs = [
        not torch.equal(p, base.state_dict()[k])
        for k, p in merged.state_dict().items()
        if "proj" in k
    ]
    assert any(diffs)


def test_resume_from_checkpoint(tiny_model, turn_data, tmp_path) -> None:
    out = tmp_path / "resume"
    with pytest.raises(ResumeError, match="no checkpoint"):
        c = cfg(tiny_model, turn_data, out, max_steps=2)
        c.resume = True
        run_sft(c)
    first = run_sft(cfg(tiny_model, turn_data, out, max_steps=4, save_steps=2))
    assert first.steps == 4 and (out / "checkpoint-4").is_dir()
    c = cfg(tiny_model, turn_data, out, max_steps=6, save_steps=2)
    c.resume = True
    second = run_sft(c)
    assert second.resumed_from.endswith("checkpoint-4") and second.steps == 6


def test_too_long_samples_are_dropped_not_cut(tiny_model, traj_data, tmp_path) -> None:
    built = build_trainer(cfg(tiny_model, traj_data, tmp_path, max_length=300))
    assert built.dropped_too_long > 0 and built.samples > 0
    # segments too long as one row stay one-turn rows: only turns too long on their own drop
    assert built.samples + built.dropped_too_long <= len(completions(traj_data))
    for row in built.trainer.train_dataset:
        assert len(row["input_ids"]) <= 300
        assert built.tokenizer.decode(row["input_ids"]).endswith("<|im_end|>\n")
    with pytest.raises(ConfigError, match="longer than trl.max_length=20"):
        build_trainer(cfg(tiny_model, traj_data, tmp_path, max_length=20))


def test_several_data_folders_train_together(tiny_model, traj_data, tmp_path) -> None:
    import shutil

    from searchprime.train.sft import sft_settings

    twin = tmp_path / "twin"
    shutil.copytree(traj_data, twin)
    one_cfg = cfg(tiny_model, traj_data, tmp_path / "a")
    both_cfg = one_cfg.model_copy(update={"data": [str(traj_data), str(twin)]})
    one, both = build_trainer(one_cfg), build_trainer(both_cfg)
    # every segment of each folder, merged within its folder and never across the two
    assert both.assistant_only and len(both.trainer.train_dataset) == 2 * len(
        one.trainer.train_dataset
    )
    # the fingerprint names both files; one folder's keeps its single digest (old runs resume)
    # a folder of whole trajectories (already assistant-only) does not stop the other's merge
    whole = tmp_path / "whole.jsonl"
    turn = lambda role, text: {"role": role, "content": text}  # noqa: E731
    whole.write_text(
        json.dumps(
            {
                "prompt": [turn("system", "rules"), turn("user", "Question: q?")],
                "completion": [
                    turn("assistant", "<search>q</search>"),
                    turn("user", "<information>x</information>"),
                    turn("assistant", "<answer>x</answer>"),
                ],
            }
        )
        + "\n"
    )
    mixed = build_trainer(one_cfg.model_copy(update={"data": [str(whole), str(traj_data)]}))
    assert len(mixed.trainer.train_dataset) == 1 + len(one.trainer.train_dataset)
    single, pair = sft_settings(one_cfg)["data"], sft_settings(both_cfg)["data"]
    assert isinstance(single, dict) and pair == [single, single]  # same bytes, same digest
    messages = tmp_path / "messages.jsonl"
    messages.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
        )
        + "\n"
    )
    with pytest.raises(ConfigError, match=r"messages.jsonl holds messages rows but .*train.jsonl"):
        build_trainer(
            cfg(tiny_model, traj_data, tmp_path).model_copy(
                update={"data": [str(traj_data), str(messages)]}
            )
        )
    with pytest.raises(ValidationError, match="empty list"):
        SFTRunConfig(model="m", data=[], output_dir=str(tmp_path))


def test_config_and_data_errors(tiny_model, turn_data, tmp_path) -> None:
    with pytest.raises(ValidationError, match="no_such_field: not a trl.SFTConfig field"):
        cfg(tiny_model, turn_data, tmp_path, no_such_field=1)
    with pytest.raises(ValidationError, match="completion_only_loss: set by searchprime"):
        cfg(tiny_model, turn_data, tmp_path, completion_only_loss=False)
    with pytest.raises(ConfigError, match="wrapped"):
        build_trainer(
            cfg(tiny_model, turn_data, tmp_path, packing=True, packing_strategy="wrapped")
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": [{"role": "user", "content": "q"}], "completion": []}\n')
    with pytest.raises(RecordError, match=r"bad.jsonl:1: completion: expected a non-empty"):
        build_trainer(cfg(tiny_model, bad, tmp_path))
    with pytest.raises(ConfigError, match="GGUF"):
        build_trainer(cfg("x.gguf", turn_data, tmp_path))


def test_cli_model_and_train(tmp_path, turn_data) -> None:
    from searchprime.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["model", "init", "tiny", str(tmp_path / "m"), "--vocab-size", "400"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "o"
    args = ["train", "sft", "--model", str(tmp_path / "m"), "--data", str(turn_data)]
    args += ["--data", str(turn_data / "train.jsonl")]  # --data repeats: trained together
    args += ["--out", str(out), "--max-steps", "2", "--batch-size", "2", "--max-length", "512"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "steps 2" in res.output
    assert (out / "model.safetensors").exists()
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["data"].count("train.jsonl") == 2 and " + " in summary["data"]
    assert summary["samples"] == 2 * len(completions(turn_data))


def _cpuinfo_has_native_bf16() -> bool:
    """What the kernel says: the CPU flags for AVX512-BF16 or AMX (bf16 tiles)."""
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    if not info.exists():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    flags = set()
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU default only")
def test_cpu_bf16_default_follows_the_cpu_and_stays_on_the_cpu(tmp_path) -> None:
    from searchprime.train.sft import _sft_config, cpu_has_native_bf16

    native = _cpuinfo_has_native_bf16()
    assert cpu_has_native_bf16() is native
    args = _sft_config(SFTRunConfig(model="m", data="d", output_dir=str(tmp_path)), True)
    assert args.bf16 is native
    assert args.use_cpu == args.bf16  # set only where bf16 needs it
    forced = _sft_config(
        SFTRunConfig(model="m", data="d", output_dir=str(tmp_path), trl={"bf16": False}), True
    )
    assert forced.bf16 is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU only")
@pytest.mark.parametrize(("trl", "native", "warns"), [
    ({"bf16": True}, False, True),
    ({"bf16": True}, True, False),
    ({}, False, False),
    ({"bf16": False}, False, False),
])  # fmt: skip
def test_bf16_asked_for_on_a_cpu_without_it_is_said(
    tmp_path, monkeypatch, caplog, trl, native, warns
) -> None:
    from searchprime.train import sft

    monkeypatch.setattr(sft, "cpu_has_native_bf16", lambda: native)
    run = SFTRunConfig(model="m", data="d", output_dir=str(tmp_path), trl=trl)
    with caplog.at_level("WARNING", logger="searchprime.train.sft"):
        sft._sft_config(run, True)
    said = [r.getMessage() for r in caplog.records if "no native bf16" in r.getMessage()]
    assert said == ([sft.FP32_KERNELS_NOTE] if warns else [])
