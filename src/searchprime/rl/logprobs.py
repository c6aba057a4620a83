"""Teacher-forced log-probabilities of a token sequence under a ``transformers`` model.

What the GRPO trainer computes for the sampled tokens, used to check a sampler against it
(parity tests, ``bench/rl.py``): one forward pass over the whole sequence, logits divided by
the temperature, log-softmax, the log-probability of each next token.
"""

from __future__ import annotations

from typing import Any

from searchprime._lazy import require

__all__ = ["sequence_logprobs"]


def sequence_logprobs(
    model: Any, ids: list[int], start: int, temperature: float = 1.0
) -> list[float]:
    """Log-probabilities of ``ids[start:]``, each given the tokens before it."""
    torch = require("torch", "train")
    if not 0 < start < len(ids):
        raise ValueError(f"start must be in [1, {len(ids) - 1}], got {start}")
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, start - 1 : -1]
        logps = torch.log_softmax(logits.float() / temperature, dim=-1)
        target = torch.tensor(ids[start:], device=device)
        return logps.gather(-1, target.unsqueeze(-1)).squeeze(-1).tolist()
