"""The one interface every policy implements: an LLM server, a local model or a teacher.

Besides the :class:`LLM` protocol a backend may define ``async def prepare(self) -> None``:
a once-per-run check (look the model up, see that the endpoint answers) that the rollout runs
before any task through :func:`prepare_backend`, so a dead endpoint stops the run at once
instead of failing every task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from searchprime.records import Message


class SamplingParams(BaseModel):
    """Decoding settings for one request."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=512, ge=1, description="Most tokens to generate.")
    temperature: float = Field(default=0.7, ge=0.0, description="0 = greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(
        default_factory=list,
        description="Stop sequences; the matched stop is restored at the end of the text.",
    )
    seed: int | None = Field(default=None, description="Per-request seed, where supported.")
    logprobs: bool = Field(default=False, description="Return per-token logprobs if supported.")


class Completion(BaseModel):
    """What a policy returned for one request."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Generated text, including the stop sequence that ended it.")
    reasoning: str | None = Field(default=None, description="Separately returned reasoning.")
    finish_reason: str = Field(default="stop", description="'stop', 'length', ...")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: list[float] | None = None
    latency_s: float = 0.0
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Policy-specific notes; copied into Turn.policy_meta."
    )


@runtime_checkable
class LLM(Protocol):
    """A chat policy. Implementations must be safe to call from many asyncio tasks at once."""

    name: str

    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """Generate one response to ``messages``."""
        ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the chat-formatted ``messages`` take with the policy's own tokenizer."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings to record in each trajectory (never secrets)."""
        ...

    async def aclose(self) -> None:
        """Release connections or models."""
        ...


async def prepare_backend(backend: Any) -> None:
    """Run ``backend.prepare()`` if the backend has one (errors propagate)."""
    prepare = getattr(backend, "prepare", None)
    if prepare is not None:
        await prepare()


def restore_stop(text: str, params: SamplingParams) -> str:
    """Servers strip the stop string that ended generation; put the closing tag back.

    Only an unclosed final action tag is completed, so text that already ends with a stop
    string is left unchanged.
    """
    stripped = text.rstrip()
    for stop in params.stop:
        if stripped.endswith(stop):
            return text
    for stop in params.stop:
        if stop.startswith("</"):
            opening = "<" + stop[2:]
            if text.rfind(opening) > text.rfind(stop):
                return text + stop
    return text
