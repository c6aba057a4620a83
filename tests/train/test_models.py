"""Model folders: the tiny fixture and SmolLM2 converted from the packaged GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from searchprime.train.models import SMOLLM2_SYSTEM, chatml_template
from searchprime.train.sft import SFTRunConfig, run_sft

SMOLLM2_ORIGINAL = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATS = [
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<search>x</search>"}],
    [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Question: q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "<information>\nDoc 1\n</information>"},
    ],
]


def test_tiny_folder(tiny_model) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    card = json.loads((tiny_model / "searchprime_model.json").read_text())
    assert card["kind"] == "tiny" and card["parameters"] < 1_000_000
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    text = "Doc 1 (Title: Kalo) [Source: forum | x.example]\nünïcode ✓"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: nothing is unknown
    r = tok.apply_chat_template(CHATS[0], return_dict=True, return_assistant_tokens_mask=True)
    trained = [i for i, m in zip(r["input_ids"], r["assistant_masks"], strict=True) if m]
    assert tok.decode(trained) == "<search>x</search><|im_end|>"


def test_chatml_template_renders_like_smollm2() -> None:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    t = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    for chat in CHATS:
        for gen in (False, True):
            want = t.apply_chat_template(
                chat, tokenize=False, chat_template=SMOLLM2_ORIGINAL, add_generation_prompt=gen
            )
            got = t.apply_chat_template(
                chat,
                tokenize=False,
                chat_template=chatml_template(SMOLLM2_SYSTEM),
                add_generation_prompt=gen,
            )
            assert got == want


@pytest.mark.slow
def test_prepare_smollm2_round_trip(tmp_path_factory, turn_data, smollm2_dir: Path) -> None:
    from searchprime.train.models import prepare_smollm2

    out = smollm2_dir  # the session's prepared copy (another 0.5 GB copy only costs disk)
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["model_type"] == "llama"
    assert prepare_smollm2(out) == out  # reused, not rebuilt
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not getattr(model, "is_quantized", False)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(gen[0, ids["input_ids"].shape[1] :])
    # the Trainer accepts it, and its saved checkpoint reloads as a plain model
    s = run_sft(
        SFTRunConfig(
            model=str(out),
            data=str(turn_data),
            output_dir=str(tmp_path_factory.mktemp("smolsft")),
            limit=4,
            trl={"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 512},
        )
    )
    again = AutoModelForCausalLM.from_pretrained(s.output_dir)
    assert not getattr(again, "is_quantized", False)
    saved = json.loads((Path(s.output_dir) / "config.json").read_text())
    assert "quantization_config" not in saved
