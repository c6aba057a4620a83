"""One row of :class:`~searchprime.llm.local_hf.LocalHF`'s batched decoding: its state, how its
next token is drawn, and when it is done (end-of-turn, a stop string, or its token budget)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from searchprime.llm.base import SamplingParams

__all__ = ["Row", "finish_row", "sample_token"]


@dataclass
class Row:
    """Decoding state of one request inside a batch."""

    index: int
    prompt_len: int
    max_new: int
    params: SamplingParams
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    #: every sampled id, the end-of-turn token included (``tokens`` stops before it)
    sampled: list[int] = field(default_factory=list)
    #: log-probabilities at the sampling temperature (what an RL trainer computes) instead of
    #: the raw ones
    tempered: bool = False
    generated: int = 0
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    finish: str | None = None


def sample_token(logits: torch.Tensor, row: Row) -> int:
    """The row's next token: greedy at temperature 0, else tempered (and top-p) sampling."""
    params = row.params
    if params.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        drop = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        pick = torch.multinomial(sorted_probs, 1, generator=row.generator)
        return int(order[pick])
    return int(torch.multinomial(probs, 1, generator=row.generator))


def finish_row(row: Row, token: int, tokenizer: Any, eos_ids: set[int]) -> None:
    """Update ``row`` after sampling ``token``; set ``finish`` when it is done."""
    row.generated += 1
    row.sampled.append(token)
    if token in eos_ids:
        row.finish = "stop"
        row.text = tokenizer.decode(row.tokens, skip_special_tokens=True)
        return
    row.tokens.append(token)
    if row.params.stop:
        text = tokenizer.decode(row.tokens, skip_special_tokens=True)
        hits = [(text.find(s), s) for s in row.params.stop if s and s in text]
        if hits:
            start, stop = min(hits)
            row.text = text[: start + len(stop)]
            row.finish = "stop"
            return
    if len(row.tokens) >= row.max_new:
        row.finish = "length"
        row.text = tokenizer.decode(row.tokens, skip_special_tokens=True)
