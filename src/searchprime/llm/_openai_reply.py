"""The OpenAI chat wire format: the request body, and the reply read defensively.

A ``200`` reply that cannot be used (not an object, no ``choices``, a wrong shape) raises
:class:`~searchprime._http.BadReply`, which the transport retries like a 5xx.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from searchprime._http import BadReply
from searchprime.errors import LLMError
from searchprime.llm.base import SamplingParams, restore_stop
from searchprime.records import Message

__all__ = ["chat_body", "first_model_id", "reply_fields"]


def chat_body(
    model: str, messages: Sequence[Message], params: SamplingParams, extra: dict[str, Any]
) -> dict[str, Any]:
    """The ``POST /chat/completions`` body (``extra`` merged last)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    if params.logprobs:
        body["logprobs"] = True
    body.update(extra)
    return body


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _text(value: Any, where: str) -> str | None:
    """A text field: a string, None, or a list of text parts (``[{"type": "text", ...}]``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p.get("text") if isinstance(p, dict) else p for p in value]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
    raise BadReply(f"{where} is {_kind(value)}, not text")


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reply_fields(data: Any, params: SamplingParams) -> dict[str, Any]:
    """The :class:`~searchprime.llm.base.Completion` fields of a chat reply.

    Raises :class:`~searchprime._http.BadReply` if it has none.
    """
    if not isinstance(data, dict):
        raise BadReply(f"the reply is {_kind(data)}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadReply("no choices" if not choices else f"choices is {_kind(choices)}")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise BadReply(f"choices[0] is {_kind(choice)}, not an object")
    message = choice.get("message")
    if message is None:
        message = {"content": choice.get("text")}  # the legacy completions shape
    if not isinstance(message, dict):
        raise BadReply(f"choices[0].message is {_kind(message)}, not an object")
    text = _text(message.get("content"), "choices[0].message.content") or ""
    reasoning = _text(
        message.get("reasoning_content", message.get("reasoning")), "choices[0].message.reasoning"
    )
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) and finish else "stop"
    if finish == "stop":
        matched = choice.get("stop_reason")  # vLLM names the stop string that matched
        if isinstance(matched, str) and matched in params.stop:
            if not text.rstrip().endswith(matched):
                text += matched
        else:
            text = restore_stop(text, params)
    logprobs = None
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        values = [t.get("logprob") if isinstance(t, dict) else None for t in lp["content"]]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            logprobs = [float(v) for v in values]
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return {
        "text": text,
        "reasoning": reasoning or None,
        "finish_reason": finish,
        "prompt_tokens": _count(usage.get("prompt_tokens")),
        "completion_tokens": _count(usage.get("completion_tokens")),
        "logprobs": logprobs,
    }


def first_model_id(data: Any, where: str) -> str:
    """The first model id of a ``GET /models`` reply; :class:`LLMError` when none is listed."""
    try:
        return str(data["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"{where}: no model listed; pass the model name explicitly") from None
