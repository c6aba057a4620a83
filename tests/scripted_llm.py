"""A deterministic, scripted LLM shared by the tests (policies, judges, annotators)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from searchprime.llm.base import Completion, SamplingParams
from searchprime.records import Message

Policy = Callable[[list[Message], int], "str | Completion"]


class ScriptedLLM:
    """A deterministic policy for tests: ``policy(messages, call_index)`` returns the response.

    Records every request (messages and params) and the peak number of calls in flight.
    Token counting is a documented estimate: characters / 4 over the message contents.
    """

    name = "scripted"

    def __init__(self, policy: Policy, delay_s: float = 0.0):
        self.policy = policy
        self.delay_s = delay_s
        self.requests: list[tuple[list[Message], SamplingParams]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.closed = False

    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            msgs = list(messages)
            self.requests.append((msgs, params))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            out = self.policy(msgs, len(self.requests) - 1)
            return out if isinstance(out, Completion) else Completion(text=out)
        finally:
            self.in_flight -= 1

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content) for m in messages) // 4 + 4 * len(messages)

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted"}

    @property
    def calls(self) -> int:
        """Requests received so far."""
        return len(self.requests)

    @property
    def prompts(self) -> list[str]:
        """The last message of every request, in order."""
        return [msgs[-1].content for msgs, _ in self.requests]

    async def aclose(self) -> None:
        self.closed = True
