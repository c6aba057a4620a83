"""TRL's ``GRPOTrainer`` with an importance-sampling correction for non-vLLM samplers."""

from __future__ import annotations

from typing import Any

from searchprime._lazy import require

__all__ = ["trainer_class"]


def trainer_class() -> type:
    """``GRPOTrainer`` with an importance-sampling correction for non-vLLM samplers.

    TRL corrects the sampler/trainer gap only on its vLLM path. For llama.cpp we apply the same
    truncated per-token weights (``min(exp(logp_trainer - logp_sampler), cap)``; NaN sampler
    logprobs weigh 1) through TRL's loss. On policy (one optimisation pass per generation) the
    trainer's logprobs are those of the loss's own forward pass, detached, so the weights cost
    no extra forward pass; when TRL computes ``old_per_token_logps`` itself, those are used.
    """
    trl = require("trl", "train")
    torch = require("torch", "train")

    class SearchGRPOTrainer(trl.GRPOTrainer):
        is_correction: bool = False
        is_clip: float = 3.0

        def _is_ratio(self, trainer_logps: Any, inputs: dict[str, Any]) -> Any:
            sampling = inputs["sampling_per_token_logps"]
            mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
            diff = torch.nan_to_num((trainer_logps.detach() - sampling) * mask, nan=0.0)
            picked = diff[mask.bool() & ~torch.isnan(sampling)].abs()
            mode = "train" if self.model.training else "eval"
            if picked.numel():
                metrics = self._metrics[mode]
                metrics["sampling/sampling_logp_difference/mean"].append(picked.mean().item())
                metrics["sampling/sampling_logp_difference/max"].append(picked.max().item())
            return torch.exp(diff).clamp(max=self.is_clip)

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            if not self.is_correction or self.use_vllm or "sampling_per_token_logps" not in inputs:
                return super()._compute_loss(model, inputs)
            old = inputs.get("old_per_token_logps")
            if old is not None:
                inputs["importance_sampling_ratio"] = self._is_ratio(old, inputs)
            else:
                # the weights come from the loss pass's own logprobs: hook the one forward
                forward = self._get_per_token_logps_and_entropies

                def forward_and_weigh(*args: Any, **kwargs: Any) -> Any:
                    result = forward(*args, **kwargs)
                    inputs["importance_sampling_ratio"] = self._is_ratio(result[0], inputs)
                    return result

                self._get_per_token_logps_and_entropies = forward_and_weigh
            # TRL multiplies the loss by inputs["importance_sampling_ratio"] only when
            # use_vllm is set; inside _compute_loss the flag gates nothing else for our losses.
            self.use_vllm = True
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self.use_vllm = False
                self.__dict__.pop("_get_per_token_logps_and_entropies", None)

    return SearchGRPOTrainer
