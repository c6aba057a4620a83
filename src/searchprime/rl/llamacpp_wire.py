"""What the llama.cpp sampler sends to ``POST /completion`` and reads back from it.

What llama.cpp (xllamacpp 2026.10.11549) returns, measured on SmolLM2-135M:

- ``tokens`` holds every sampled id: the end-of-turn token (``<|im_end|>``, id 2) when it ended
  the turn, and every token of a matched stop string (``</search>`` -> ``</`` ``search`` ``>``),
  with ``len(tokens) == tokens_predicted``. It is used as is: ``Sampled.ids``.
- ``completion_probabilities`` (non-streaming) drops the stop string's tokens (it cuts as many
  entries as the stop string tokenizes to; the whole field is absent when only the stop string
  was sampled) and gives one entry for a UTF-8 character split over several tokens (the id of
  the token that completes it, the bytes of the whole character). Entries are matched to
  ``tokens`` by id in order; unmatched tokens get NaN (``meta["missing_logprobs"]``).
- Streaming (``stream: true``) would give a probability for each stop-string token, but its
  chunks silently drop the ids of tokens that end inside a UTF-8 character (a Chinese or emoji
  continuation lost 1-3 ids per character): exact ids matter more, so the sampler does not stream.
- Without ``post_sampling_probs`` the probabilities are the raw softmax (temperature 1) whatever
  the temperature: at T = 0.7 the mean |Δ| to the trainer's tempered log-probs was 0.32 (max 4.0).
  With it they are the sampling distribution (mean |Δ| 0.003 at T = 0.7 and 0.4), but decoding
  is ~15% slower (62 vs 75 tok/s), so it is sent only when T != 1; at T = 1 both are the same
  distribution (mean |Δ| to the trainer 0.0030 without, 0.0024 with). At T = 0 (greedy) every
  logprob is 0.0.
- When the context fills during decoding the server ends with ``stop_type: "limit"`` and
  ``truncated: true`` (finish ``"length"``, ``meta["context_full"]``); a prompt that does not fit
  is refused with HTTP 400, raised as :class:`~searchprime.errors.LLMError`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import SamplingParams
from searchprime.rl.sampler import Sampled

__all__ = [
    "RESPONSE_FIELDS",
    "SEED_SPACE",
    "align_logprobs",
    "excerpt",
    "parse_completion",
    "request_body",
    "server_error",
]

#: Fields asked of the server (the full answer also echoes the prompt text and settings).
RESPONSE_FIELDS = [
    "tokens",
    "completion_probabilities",
    "stop_type",
    "stopping_word",
    "tokens_predicted",
    "tokens_evaluated",
    "truncated",
    "timings/cache_n",
]
SEED_SPACE = 2**32 - 1  # llama.cpp seeds are uint32; 0xFFFFFFFF means "random"
_EXCERPT_CHARS = 300


def excerpt(text: str | bytes) -> str:
    """A short, printable, single-line excerpt of server text (which may be hostile)."""
    if isinstance(text, bytes):
        text = text[: 4 * _EXCERPT_CHARS].decode("utf-8", errors="replace")
    text = text[: 4 * _EXCERPT_CHARS].encode("utf-8", errors="replace").decode("utf-8")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:_EXCERPT_CHARS]


def server_error(raw: bytes) -> str:
    """llama.cpp's ``{"error": {"message": ...}}`` message, or an excerpt of the body."""
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return excerpt(raw)
    return excerpt(str(message))


def _entry_logprob(entry: dict[str, Any]) -> float:
    """The log-probability in one ``completion_probabilities`` entry (NaN if unusable)."""
    value = entry.get("logprob")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        return value if math.isfinite(value) and value <= 1e-6 else math.nan
    prob = entry.get("prob")
    if isinstance(prob, (int, float)) and not isinstance(prob, bool) and 0.0 < prob <= 1.0 + 1e-6:
        return min(math.log(prob), 0.0)
    return math.nan


def align_logprobs(tokens: list[int], entries: list[Any]) -> list[float]:
    """Each token's log-probability from the entries llama.cpp kept, matched by id in order.

    Entries are a subsequence of ``tokens`` (missing: stop-string tokens, leading pieces of a
    split UTF-8 character); tokens without an entry get NaN. If the entries are not a
    subsequence, every value is NaN rather than risk shifted values.
    """
    out = [math.nan] * len(tokens)
    j = 0
    for i, token in enumerate(tokens):
        if j < len(entries) and isinstance(entries[j], dict) and entries[j].get("id") == token:
            out[i] = _entry_logprob(entries[j])
            j += 1
    if j != len(entries):
        return [math.nan] * len(tokens)
    return out


def request_body(
    prompt_ids: list[int], params: SamplingParams, seed: int, *, name: str, vocab_size: int
) -> dict[str, Any]:
    """The ``/completion`` body: token-id prompt, the full tempered distribution, ids back."""
    if params.top_p != 1.0:
        raise ConfigError(
            f"top_p: the RL sampler draws from the full distribution, got {params.top_p}"
        )
    if not prompt_ids:
        raise LLMError(f"{name}: prompt_ids is empty")
    for i, token in enumerate(prompt_ids):
        if type(token) is not int or not 0 <= token < vocab_size:
            raise LLMError(
                f"{name}: prompt_ids[{i}]: {token!r} is not a token id (0..{vocab_size - 1})"
            )
    body: dict[str, Any] = {
        "prompt": list(prompt_ids),
        "n_predict": params.max_tokens,
        "temperature": params.temperature,
        "samplers": ["temperature"],
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.0,
        "stop": [s for s in params.stop if s],
        "seed": seed,
        "n_probs": 1,
        "return_tokens": True,
        "cache_prompt": True,
        "response_fields": RESPONSE_FIELDS,
    }
    if params.temperature != 1.0:
        body["post_sampling_probs"] = True
    return body


def parse_completion(
    data: Any, params: SamplingParams, seed: int, latency: float, *, name: str, vocab_size: int
) -> Sampled:
    """A ``/completion`` answer as :class:`Sampled`; raises :class:`LLMError` when malformed."""
    where = f"{name}: /completion response"
    if not isinstance(data, dict):
        raise LLMError(f"{where}: not a JSON object")
    tokens = data.get("tokens")
    if not isinstance(tokens, list):
        raise LLMError(f"{where}: tokens: missing (server without return_tokens?)")
    for i, token in enumerate(tokens):
        if type(token) is not int or not 0 <= token < vocab_size:
            raise LLMError(f"{where}: tokens[{i}]: {excerpt(repr(token))} is not a token id")
    if len(tokens) > params.max_tokens:
        raise LLMError(f"{where}: {len(tokens)} tokens for max_tokens={params.max_tokens}")
    predicted = data.get("tokens_predicted")
    if isinstance(predicted, int) and predicted != len(tokens):
        raise LLMError(f"{where}: {len(tokens)} token ids for {predicted} predicted tokens")
    stop_type = data.get("stop_type")
    if stop_type in ("eos", "word"):
        finish = "stop"
    elif stop_type == "limit":
        finish = "length"
    else:
        raise LLMError(f"{where}: stop_type: unexpected {excerpt(repr(stop_type))}")
    entries = data.get("completion_probabilities") or []
    if not isinstance(entries, list):
        entries = []
    logprobs = align_logprobs(tokens, entries)
    stopping = data.get("stopping_word")
    cache = data.get("timings/cache_n")
    prompt_n = data.get("tokens_evaluated")
    meta: dict[str, Any] = {
        "stop_type": stop_type,
        "stop_string": stopping if stop_type == "word" and stopping in params.stop else None,
        "seed": seed,
        "missing_logprobs": sum(1 for v in logprobs if math.isnan(v)),
        "context_full": data.get("truncated") is True,
        "prompt_tokens": prompt_n if isinstance(prompt_n, int) else None,
        "cached_tokens": cache if isinstance(cache, int) else None,
        "latency_s": latency,
    }
    return Sampled(ids=list(tokens), logprobs=logprobs, finish_reason=finish, meta=meta)
