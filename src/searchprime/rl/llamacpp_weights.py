"""The policy's weights for the llama.cpp sampler: checked on the way in, saved for GGUF export.

:class:`~searchprime.rl.llamacpp_sampler.LlamaCppSampler` exports the policy folder once at
start and, at each weight sync, the trainer's live model saved by :func:`save_weights` into a
complete HF folder (weights + the policy's tokenizer files) that
:func:`~searchprime.train.gguf_export.export_gguf` reads.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError

__all__ = ["DTYPES", "TOKENIZER_FILES", "check_dtype", "read_vocab_size", "save_weights"]

#: GGUF weight types usable for sampling (q8_0 measured unusable: gap 0.34).
DTYPES = ("f16", "f32")
#: Files copied from ``model_dir`` next to the saved weights, so ``work_dir/weights`` is a
#: complete HF folder (``save_pretrained`` writes config, generation config and weights).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def check_dtype(dtype: str) -> None:
    """Raise :class:`ConfigError` unless ``dtype`` is a GGUF weight type fit for sampling."""
    if dtype == "q8_0":
        raise ConfigError(
            "dtype: q8_0 is not usable as an RL sampler (its logprobs are 0.34 off the "
            "trainer's, /work/shared/RL.md); use f16"
        )
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")


def read_vocab_size(model_dir: Path) -> int:
    """``vocab_size`` of the HF folder ``model_dir`` (its ``config.json``)."""
    from searchprime.train.gguf_export import read_hf_config

    config_path = model_dir / "config.json"
    vocab = read_hf_config(model_dir).get("vocab_size")
    if not isinstance(vocab, int) or vocab < 1:
        raise ConfigError(f"{config_path}: vocab_size: missing or not a positive integer")
    return vocab


def save_weights(model: Any, weights: Path, tokenizer_from: Path | None) -> None:
    """Save ``model`` (a live ``transformers`` model) into ``weights`` as safetensors.

    ``tokenizer_from``: the folder whose tokenizer files are copied alongside (None: already
    copied by an earlier save).
    """
    save = getattr(model, "save_pretrained", None)
    if not callable(save):
        raise ConfigError(f"sync_weights: {type(model).__name__} has no save_pretrained")
    weights.mkdir(parents=True, exist_ok=True)
    # a stale shard from an earlier (sharded) save would be exported with the new weights
    for old in [*weights.glob("*.safetensors"), *weights.glob("*.safetensors.index.json")]:
        old.unlink()
    kwargs = {}
    if "safe_serialization" in inspect.signature(save).parameters:
        kwargs["safe_serialization"] = True  # transformers 4.x; 5.x always writes safetensors
    save(weights, **kwargs)
    if tokenizer_from is not None:
        for name in TOKENIZER_FILES:
            if (tokenizer_from / name).is_file():
                shutil.copy2(tokenizer_from / name, weights / name)
