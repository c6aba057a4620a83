"""The token-level sampler RL draws episodes from: token ids in, token ids and logprobs out.

The agent loop speaks messages (:class:`~searchprime.llm.base.LLM`); RL needs the exact token
ids the policy sampled, so that the trainer scores the very sequence that was generated (a
re-tokenized text can split differently). A :class:`TokenSampler` continues a prompt given as
token ids and returns what it sampled, token by token, with the sampler's own log-probabilities
at the sampling temperature (the trainer compares them with its own for the importance-sampling
correction). :class:`~searchprime.rl.episode.EpisodeLLM` adapts one to the agent loop.

Implementations: ``hf`` (:mod:`searchprime.rl.hf_sampler`, the trainer's own model in-process,
never out of sync), ``llamacpp`` (:mod:`searchprime.rl.llamacpp_sampler`, a llama.cpp server
that gets the trainer's weights after each optimizer step) and ``vllm``
(:mod:`searchprime.rl.vllm_sampler`, TRL's vLLM server, which TRL keeps in sync).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from searchprime.llm.base import SamplingParams

__all__ = ["Sampled", "TokenSampler"]


@dataclass
class Sampled:
    """What a sampler drew for one prompt.

    ``ids`` are every token sampled, in order: the end-of-turn token when it was sampled, and
    every token of a stop string (a stop ends sampling but its tokens stay). ``logprobs[i]`` is
    the sampler's log-probability of ``ids[i]`` at the sampling temperature (NaN if unknown).
    ``finish_reason``: ``"stop"`` (end-of-turn token or stop string) or ``"length"``.
    """

    ids: list[int]
    logprobs: list[float]
    finish_reason: str = "stop"
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class TokenSampler(Protocol):
    """Samples continuations of token-id prompts; safe to call from many asyncio tasks."""

    name: str

    async def sample(self, prompt_ids: list[int], params: SamplingParams) -> Sampled:
        """Sample one continuation of ``prompt_ids`` (``params``: temperature, max_tokens,
        stop strings, seed; top_p must be 1 for RL)."""
        ...

    def sync_weights(self, model: Any) -> float:
        """Load ``model``'s current weights (a ``transformers`` model); return seconds spent.

        A sampler that shares the trainer's model in-process returns 0.0 at once.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Settings to record with each trajectory."""
        ...

    async def aclose(self) -> None:
        """Release servers and threads."""
        ...
