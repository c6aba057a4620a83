"""The ``hf`` sampler: the trainer's own ``transformers`` model decodes the episodes in-process.

It shares the model object with the trainer, so its weights are always the current ones (no
sync) and its log-probabilities match the trainer's up to float noise of the KV cache. Decoding
is :class:`~searchprime.llm.local_hf.LocalHF`'s batched loop: concurrent agents' turns are
decoded together in static batches. Works on any device and any causal LM.
"""

from __future__ import annotations

from typing import Any

from searchprime.llm.base import SamplingParams
from searchprime.rl.sampler import Sampled

__all__ = ["HFSampler"]


class HFSampler:
    """A :class:`~searchprime.rl.sampler.TokenSampler` over a live ``transformers`` model."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 16):
        from searchprime.llm.local_hf import LocalHF

        self.model = model
        self._llm = LocalHF.from_model(model, tokenizer, max_batch=max_batch)
        self.name = f"hf:{self._llm.name.removeprefix('local:')}"

    async def sample(self, prompt_ids: list[int], params: SamplingParams) -> Sampled:
        """Decode a continuation of ``prompt_ids`` with the model as it is now."""
        completion = await self._llm.complete_ids(prompt_ids, params)
        return Sampled(
            ids=list(completion.meta.get("ids", [])),
            logprobs=list(completion.logprobs or []),
            finish_reason=completion.finish_reason,
        )

    def sync_weights(self, model: Any) -> float:
        """Nothing to do: the sampler decodes with the trainer's model object itself."""
        if model is not self.model:
            self.model = model
            self._llm.model = model
        return 0.0

    def describe(self) -> dict[str, Any]:
        """The model and batching settings."""
        return {"kind": "hf", **self._llm.describe()}

    async def aclose(self) -> None:
        """Stop the batching task."""
        await self._llm.aclose()
