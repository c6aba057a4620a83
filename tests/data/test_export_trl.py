"""The TRL export under TRL's *default* arguments: no observation token trained, and every
``<think>`` block kept under Qwen3's stock chat template (which drops the reasoning of earlier
assistant turns). Checked with a bare ``trl.SFTTrainer`` on a tiny model (labels counted, no
training step) and with :func:`searchprime.data.export_check.check_export`."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import pytest
from sp_trajs import make_traj, population

from searchprime.data.export import export_samples
from searchprime.data.export_check import check_export, check_row, trl_default_mask
from searchprime.data.samples import build_samples
from searchprime.errors import ConfigError, RecordError

pytest.importorskip("trl")

STEPS = [
    ("search", "a"),
    ("search", "b"),
    ("invalid", "x"),
    ("search", "c"),
    ("summary", "so far c"),
    ("search", "d"),
    ("answer", "Paris"),
]
#: Qwen3's chat template exactly as TRL ships it (the one Qwen publishes with its models).
QWEN3 = (importlib.resources.files("trl") / "chat_templates" / "qwen3.jinja").read_text()


def _trajs():
    return [make_traj("t1", steps=STEPS), *population()[:3]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from searchprime.train.models import init_tiny

    return init_tiny(tmp_path_factory.mktemp("tiny"), layers=1, hidden_size=32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    trajs = _trajs()
    out = tmp_path_factory.mktemp("trl")
    export_samples(
        "trl", out, samples=build_samples(trajs, "trajectory"), trajectories=trajs,
        shape="trajectory",
    )  # fmt: skip
    return out


def _old_layout(path: Path, *, messages: bool) -> Path:
    """The export as it was: whole segments, observations inside the completion."""
    path.mkdir()
    rows = []
    for s in build_samples(_trajs(), "trajectory"):
        prompt = [m.model_dump(include={"role", "content"}) for m in s.prompt]
        completion = [m.model_dump(include={"role", "content"}) for m in s.completion]
        rows.append(
            {"messages": prompt + completion}
            if messages
            else {"prompt": prompt, "completion": completion}
        )
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines()]


def test_trajectory_shape_is_one_assistant_turn_per_row(exported) -> None:
    trajs = _trajs()
    rows = _rows(exported)
    segments = build_samples(trajs, "trajectory")
    assert len(rows) == sum(len(s.turns) for s in segments) == 6 + 3 * 3  # t1: 6 valid turns
    for row in rows:
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert row["prompt"][-1]["role"] == "user"
    ids = [json.loads(x) for x in (exported / "samples.jsonl").read_text().splitlines()]
    assert [i["id"] for i in ids[:4]] == ["t1#0#s0t0", "t1#0#s0t1", "t1#0#s1t3", "t1#0#s1t4"]
    assert ids[1]["segment"] == "t1#0#s0" and ids[1]["turns"] == [1]
    # turn 1's row: the segment's prompt + turn 0's output and its observation, then turn 1
    t = trajs[0]
    assert rows[1]["prompt"][-2] == {"role": "assistant", "content": t.turns[0].output}
    assert rows[1]["prompt"][-1]["content"].startswith("<information>")
    assert rows[1]["completion"][0]["content"] == t.turns[1].output


def test_sft_config_yaml_sets_the_loss_fields(exported) -> None:
    import yaml
    from trl import SFTConfig

    cfg = yaml.safe_load((exported / "sft_config.yaml").read_text())
    assert cfg == {"completion_only_loss": True, "assistant_only_loss": False}
    args = SFTConfig(output_dir=str(exported / "o"), bf16=False, report_to="none", **cfg)
    assert args.completion_only_loss is True and args.assistant_only_loss is False


@pytest.mark.parametrize("template", ["chatml", "qwen3"])
def test_bare_sft_trainer_trains_no_observation_and_every_thought(
    tiny, exported, tmp_path, template
) -> None:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny)
    if template == "qwen3":
        tok.chat_template = QWEN3
    # every data and loss field at TRL's default; only the CPU needs bf16 off
    args = SFTConfig(output_dir=str(tmp_path), bf16=False, report_to="none")
    assert args.completion_only_loss is None and args.assistant_only_loss is False
    dataset = datasets.load_dataset(str(exported), split="train")  # as a user loads the folder
    assert dataset.column_names == ["prompt", "completion"]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny),
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    src = _rows(exported)
    prepared = trainer.train_dataset
    assert len(prepared) == len(src)
    obs = thoughts = kept = 0
    for row, ex in zip(src, prepared, strict=True):
        trained = [lab != -100 for lab in ex["labels"]]
        check = check_row(tok, row, ex["input_ids"], trained)
        obs += check.observation_tokens_trained
        thoughts += check.think_blocks
        kept += check.think_blocks_trained
        assert check.observation_tokens > 0 and check.trained_tokens > 0
        # the checker's model of TRL's defaults is what TRL did
        assert trl_default_mask(tok, row) == (ex["input_ids"], trained)
    assert obs == 0
    assert thoughts == kept == len(src)  # one <think> per output, all in the trained text
    # and the collated batch carries the same labels
    batch = next(iter(trainer.get_train_dataloader()))
    text = tok.decode(batch["input_ids"][batch["labels"] != -100])
    assert "<information>" not in text and "<think>" in text
    report = check_export(exported, tok)
    assert report.ok and report.rows == len(src) and report.think_blocks == len(src)


def test_check_export_catches_the_old_layouts(tiny, tmp_path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    segments = _old_layout(tmp_path / "pc", messages=False)
    chatml = check_export(segments, tok)
    assert chatml.layout == "prompt-completion" and not chatml.ok
    assert chatml.observation_tokens_trained > 0  # observations inside the completion
    assert chatml.think_blocks_trained == chatml.think_blocks  # ChatML keeps every thought
    tok.chat_template = QWEN3
    qwen3 = check_export(segments, tok)
    # Qwen3 keeps <think> only after the last user message: one per segment
    assert qwen3.think_blocks_trained == qwen3.rows < qwen3.think_blocks
    msgs = check_export(_old_layout(tmp_path / "msgs", messages=True), tok)
    assert msgs.layout == "messages"
    assert msgs.trained_tokens == msgs.tokens  # TRL's default trains all of a messages row
    assert msgs.observation_tokens_trained == msgs.observation_tokens > 0


def test_check_export_errors(tiny, tmp_path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    with pytest.raises(ConfigError, match="not found"):
        check_export(tmp_path / "nothing", tok)
    (tmp_path / "train.jsonl").write_text('{"text": "plain"}\n')
    with pytest.raises(RecordError, match=r"train.jsonl:1: <record>: expected messages"):
        check_export(tmp_path, tok)
