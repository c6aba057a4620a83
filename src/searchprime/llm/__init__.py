"""LLM backends: the protocol, an OpenAI-compatible HTTP client, a local HF model, a GGUF server.

``LocalHF`` imports torch, so it is loaded only when first accessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from searchprime.llm.base import LLM, Completion, SamplingParams, restore_stop
from searchprime.llm.models import smollm2_gguf_path
from searchprime.llm.openai_http import OpenAIChat
from searchprime.llm.pool import OpenAIPool
from searchprime.llm.registry import LLMConfig, load_llm, register_llm_backend
from searchprime.llm.serve import GGUFServer
from searchprime.llm.tokens import count_chat_tokens, load_tokenizer

if TYPE_CHECKING:
    from searchprime.llm.local_hf import LocalHF

__all__ = [
    "LLM",
    "Completion",
    "GGUFServer",
    "LLMConfig",
    "LocalHF",
    "OpenAIChat",
    "OpenAIPool",
    "SamplingParams",
    "count_chat_tokens",
    "load_llm",
    "load_tokenizer",
    "register_llm_backend",
    "restore_stop",
    "smollm2_gguf_path",
]


def __getattr__(name: str) -> Any:
    if name == "LocalHF":
        from searchprime.llm.local_hf import LocalHF

        return LocalHF
    raise AttributeError(f"module 'searchprime.llm' has no attribute {name!r}")
