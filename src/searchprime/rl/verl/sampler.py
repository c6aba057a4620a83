"""A :class:`~searchprime.rl.sampler.TokenSampler` over verl's server manager.

verl's agent loops generate through ``server_manager.generate(request_id, prompt_ids=...,
sampling_params=...)``, which returns a ``TokenOutput`` (``token_ids``, ``log_probs``,
``stop_reason``). This adapter lets :class:`~searchprime.rl.episode.EpisodeLLM` (and so our
agent loop) sample through it: verl's sampling settings (temperature, top-p/k, logprobs) are
kept as verl chose them; per turn only ``max_tokens`` and the action stop strings are added.

A server that ignores the stop strings (or trims them differently) cannot desynchronise the
episode: the sampled ids are cut right after the token that completes the first stop string,
so a turn always ends at its action's closing tag, as the loop's protocol requires.
"""

from __future__ import annotations

import math
from typing import Any

from searchprime.llm.base import SamplingParams
from searchprime.rl.sampler import Sampled

__all__ = ["ServerManagerSampler", "cut_at_stop"]

#: vLLM keeps the stop string's tokens and text with this (verl hands it the dict as is).
VLLM_STOP_PARAMS: dict[str, Any] = {"include_stop_str_in_output": True}


def cut_at_stop(
    ids: list[int], logprobs: list[float] | None, stops: list[str], decode: Any
) -> tuple[list[int], list[float] | None, bool]:
    """Keep ``ids`` up to the token that completes the first stop string; (ids, logprobs, cut).

    ``decode(ids) -> str``. Binary search over prefixes: a decoded prefix containing a stop
    string stays containing it as the prefix grows.
    """
    if not stops or not ids:
        return ids, logprobs, False
    text = decode(ids)
    first = min((i + len(s) for s in stops if (i := text.find(s)) >= 0), default=None)
    if first is None or not text[first:].strip():
        return ids, logprobs, False

    def has_stop(n: int) -> bool:
        prefix = decode(ids[:n])
        return any(s in prefix for s in stops)

    lo, hi = 1, len(ids)  # the shortest prefix with a stop lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if has_stop(mid):
            hi = mid
        else:
            lo = mid + 1
    return ids[:lo], (logprobs[:lo] if logprobs is not None else None), True


class ServerManagerSampler:
    """Samples through verl's ``server_manager`` for one episode (one request id, so verl's
    sticky sessions keep the episode's prefix cache on one server)."""

    name = "verl"

    def __init__(
        self,
        server_manager: Any,
        sampling_params: dict[str, Any],
        tokenizer: Any,
        *,
        request_id: str,
        stop_params: dict[str, Any] | None = None,
    ):
        self.server_manager = server_manager
        self.base = dict(sampling_params)
        self.tokenizer = tokenizer
        self.request_id = request_id
        self.stop_params = dict(VLLM_STOP_PARAMS if stop_params is None else stop_params)
        self.cuts = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    async def sample(self, prompt_ids: list[int], params: SamplingParams) -> Sampled:
        """One turn: verl's settings + this turn's token budget and stop strings."""
        sp = {**self.base, "max_tokens": params.max_tokens}
        if params.stop:
            sp.update(stop=list(params.stop), **self.stop_params)
        out = await self.server_manager.generate(
            request_id=self.request_id, prompt_ids=list(prompt_ids), sampling_params=sp
        )
        ids = [int(i) for i in out.token_ids]
        logps = [float(x) for x in out.log_probs] if out.log_probs else None
        ids, logps, cut = cut_at_stop(ids, logps, list(params.stop), self._decode)
        self.cuts += cut
        eos = self.tokenizer.eos_token_id
        ended = cut or (bool(ids) and ids[-1] == eos) or self._ends_with_stop(ids, params.stop)
        return Sampled(
            ids=ids,
            logprobs=logps if logps is not None else [math.nan] * len(ids),
            finish_reason="stop" if ended else "length",
            meta={"stop_reason": getattr(out, "stop_reason", None)},
        )

    def _ends_with_stop(self, ids: list[int], stops: list[str]) -> bool:
        text = self._decode(ids[-16:]).rstrip() if ids else ""
        return any(text.endswith(s) for s in stops)

    def sync_weights(self, model: Any) -> float:
        """verl syncs the servers' weights itself."""
        return 0.0

    def describe(self) -> dict[str, Any]:
        """What the trajectory records about the sampler."""
        return {"kind": "verl", "sampling_params": self.base}

    async def aclose(self) -> None:
        """verl owns the servers."""
