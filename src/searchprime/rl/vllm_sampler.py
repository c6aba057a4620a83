"""The ``vllm`` sampler: a vLLM server continuing token-id prompts for the agent loop.

It sends ``POST /v1/completions`` the way TRL 1.16's own ``VLLMClient.generate`` does (the
prompt as token ids, ``return_token_ids``, ``return_tokens_as_token_ids``, ``logprobs: 0``, no
top-k/top-p/min-p), plus the agent's stop strings with ``include_stop_str_in_output`` so that a
stop string's tokens stay in the episode, as :class:`~searchprime.rl.sampler.Sampled` requires.
TRL's client cannot be used here: it talks to one process's batch at a time and refuses to load
without vLLM installed, while the agent loop sends one request per episode turn from every
training process.

Weights: in TRL's server mode (``trl vllm-serve`` on its own GPUs) the trainer's main process
pushes the new weights to the server before every ``rollout_func`` call, so
:meth:`VLLMSampler.sync_weights` has nothing to do. Colocate mode has no server to call and is
refused when the run is configured (:func:`searchprime.rl.grpo`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from searchprime.errors import LLMError
from searchprime.llm.base import SamplingParams
from searchprime.rl.sampler import Sampled

__all__ = ["VLLMSampler", "parse_choice", "request_body"]


def request_body(prompt_ids: list[int], params: SamplingParams, model: str) -> dict[str, Any]:
    """The ``/v1/completions`` body for one continuation of ``prompt_ids``."""
    if params.top_p != 1.0:
        raise LLMError(f"vllm sampler: top_p must be 1 for RL (got {params.top_p})")
    body: dict[str, Any] = {
        "model": model,
        "prompt": list(prompt_ids),
        "n": 1,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "logprobs": 0,
        "return_token_ids": True,
        "return_tokens_as_token_ids": True,
        "skip_special_tokens": False,
        "include_stop_str_in_output": True,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = int(params.seed)
    return body


def _bad(why: str) -> Exception:
    from searchprime._http.retry import BadReply

    return BadReply(why)


def parse_choice(data: Any, vocab_size: int | None = None) -> Sampled:
    """The :class:`Sampled` of a ``/v1/completions`` reply; a malformed reply raises
    ``BadReply`` (retried, then reported with an excerpt of the body)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        raise _bad("expected one choice")
    choice = choices[0]
    ids = choice.get("token_ids")
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids
    ):
        raise _bad("choices[0].token_ids: expected a list of token ids (is this vLLM >= 0.10?)")
    if vocab_size is not None and any(i >= vocab_size for i in ids):
        raise _bad(f"choices[0].token_ids: an id beyond the vocabulary ({vocab_size})")
    logprobs, missing = _logprobs(choice.get("logprobs"), ids)
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    meta: dict[str, Any] = {"finish_reason": choice.get("finish_reason")}
    if missing:
        meta["missing_logprobs"] = missing
    return Sampled(ids=list(ids), logprobs=logprobs, finish_reason=finish, meta=meta)


def _logprobs(block: Any, ids: list[int]) -> tuple[list[float], int]:
    """Per-id logprobs from the completions ``logprobs`` block (``tokens`` as ``token_id:N``);
    a position whose token is not the id sampled there, or has no number, gets NaN."""
    nan = float("nan")
    if not isinstance(block, dict):
        return [nan] * len(ids), len(ids)
    tokens, values = block.get("tokens") or [], block.get("token_logprobs") or []
    out: list[float] = []
    for k, tid in enumerate(ids):
        tok = tokens[k] if k < len(tokens) else None
        val = values[k] if k < len(values) else None
        same = isinstance(tok, str) and tok == f"token_id:{tid}"
        number = isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val)
        out.append(float(val) if same and number else nan)
    return out, sum(math.isnan(x) for x in out)


class VLLMSampler:
    """Samples from a vLLM server's ``/v1/completions`` by token ids (a :class:`TokenSampler`).

    Args:
        base_url: the server, e.g. ``http://10.0.0.7:8010`` (``trl vllm-serve``'s port).
        model: the served model's name (default: the first of ``GET /v1/models``).
        timeout_s: per request; a long turn of a large model takes a while.
        retries: retries of a failed request (5xx, connection errors, malformed replies).
        backoff_s: the first retry waits up to this long, each later one twice as long.
        vocab_size: the policy's vocabulary size; a reply with an id beyond it is refused.
    """

    name = "vllm"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        timeout_s: float = 600.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_connections: int = 256,
        vocab_size: int | None = None,
    ):
        from searchprime._http.retry import RetryPolicy
        from searchprime._http.transport import Transport

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.vocab_size = vocab_size
        self._policy = RetryPolicy(retries=retries, backoff_base_s=backoff_s)
        self._http = Transport(self.base_url, timeout_s=timeout_s, max_connections=max_connections)
        self.requests = 0

    async def _model(self) -> str:
        if self.model is None:
            data = await self._call("GET", "/v1/models", None, _models)
            self.model = data
        return self.model

    async def _call(self, method: str, path: str, body: Any, parse: Any) -> Any:
        from searchprime._http.retry import HTTPFailure

        try:
            value, _ = await self._http.request(
                method, self.base_url + path, body, policy=self._policy, parse=parse
            )
        except HTTPFailure as exc:
            hint = " (is `trl vllm-serve` running there?)" if exc.unreachable else ""
            raise LLMError(exc.summary(f"vllm sampler: {method} {path}") + hint) from None
        return value

    async def sample(self, prompt_ids: list[int], params: SamplingParams) -> Sampled:
        """Sample one continuation of ``prompt_ids``; raises :class:`LLMError` on failure."""
        body = request_body(prompt_ids, params, await self._model())
        start = time.perf_counter()
        sampled = await self._call(
            "POST", "/v1/completions", body, lambda data: parse_choice(data, self.vocab_size)
        )
        sampled.meta["latency_s"] = time.perf_counter() - start
        self.requests += 1
        return sampled

    def sync_weights(self, model: Any) -> float:
        """Nothing to do: TRL's trainer pushes the weights to the server before each rollout."""
        return 0.0

    def describe(self) -> dict[str, Any]:
        return {"kind": "vllm", "base_url": self.base_url, "model": self.model}

    async def aclose(self) -> None:
        await self._http.aclose()


def _models(data: Any) -> str:
    """The first served model's id from ``GET /v1/models``."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise _bad("no model listed")
    name = items[0].get("id")
    if not isinstance(name, str) or not name:
        raise _bad("data[0].id: expected the model's name")
    return name
