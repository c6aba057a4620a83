"""Count tokens of chat-formatted messages with a Hugging Face tokenizer (lazy ``transformers``).

A tokenizer is loaded from a Hugging Face model folder (or hub name) or from a GGUF file, whose
embedded tokenizer and chat template ``transformers`` reads with ``gguf_file=`` (needs the
``gguf`` package). Counting renders the messages with the tokenizer's own chat template and
tokenizes the result, so the count is what the model actually sees (with the generation prompt).

    >>> tok = load_tokenizer(smollm2_gguf_path())                     # doctest: +SKIP
    >>> count_chat_tokens(tok, [{"role": "user", "content": "hello world"}])  # doctest: +SKIP
    32
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from searchprime._lazy import require
from searchprime.errors import ConfigError
from searchprime.records import Message

__all__ = ["chat_dicts", "count_chat_tokens", "load_tokenizer", "render_chat"]


def _split_gguf(path: str | os.PathLike[str], gguf_file: str | None) -> tuple[str, str | None]:
    """``(folder_or_name, gguf_file)``: a path to a ``.gguf`` file is split into both."""
    text = os.fspath(path)
    if gguf_file is None and text.endswith(".gguf"):
        file = Path(text)
        if not file.is_file():
            raise ConfigError(f"{file}: GGUF file not found")
        return str(file.parent), file.name
    return text, gguf_file


@functools.lru_cache(maxsize=8)
def _load(source: str, gguf_file: str | None) -> Any:
    transformers = require("transformers", "train")
    if gguf_file is not None:
        require("gguf", "train")
    try:
        return transformers.AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    except (OSError, ValueError) as exc:
        where = f"{source}/{gguf_file}" if gguf_file else source
        raise ConfigError(f"{where}: cannot load a tokenizer: {exc}") from exc


def load_tokenizer(path: str | os.PathLike[str], gguf_file: str | None = None) -> Any:
    """Load (and cache) a tokenizer: a HF folder or name, ``folder + gguf_file``, or a ``.gguf``."""
    source, gguf = _split_gguf(path, gguf_file)
    return _load(source, gguf)


def chat_dicts(messages: Sequence[Message | dict[str, str]]) -> list[dict[str, str]]:
    """Messages as ``[{"role", "content"}]`` dicts."""
    return [
        {"role": m.role, "content": m.content} if isinstance(m, Message) else dict(m)
        for m in messages
    ]


def render_chat(
    tokenizer: Any,
    messages: Sequence[Message | dict[str, str]],
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text the chat template makes of ``messages``."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"{getattr(tokenizer, 'name_or_path', 'tokenizer')}: tokenizer has no chat template"
        )
    return tokenizer.apply_chat_template(
        chat_dicts(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def count_chat_tokens(
    tokenizer: Any,
    messages: Sequence[Message | dict[str, str]],
    add_generation_prompt: bool = True,
) -> int:
    """Tokens of the chat-formatted ``messages`` (template special tokens included)."""
    text = render_chat(tokenizer, messages, add_generation_prompt)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
