"""LLM judge of answer correctness, with the Behavior Priming study's semantics.

The question put to the judge: *is the prediction semantically equivalent to any of the gold
answers?* The judge answers as JSON ``{"rationale": ..., "judgement": "correct"|"incorrect"}``.
A reply that cannot be parsed is retried, then recorded as unknown (``None``) — never as
incorrect. An optional second question flags reward hacking: an answer that argues for its
own correctness instead of just answering. How both are asked and read is a prompt set
(:mod:`searchprime.eval.judge_prompts`): ``searchprime`` (ours; the audit only flags) or
``bp`` (the study's own prompts, under which a flagged answer is incorrect, unjudged).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from searchprime.eval.judge_prompts import (
    HACKING_PROMPT,
    JUDGE_PROMPT,
    JudgePrompts,
    get_judge_prompts,
    parse_hacking,
    parse_verdict,
)
from searchprime.eval.llmcall import CachedCaller, CallCache
from searchprime.llm.base import LLM

__all__ = [
    "JUDGE_PROMPT",
    "HACKING_PROMPT",
    "JudgeVerdict",
    "LLMJudge",
    "parse_hacking",
    "parse_verdict",
]


@dataclass
class JudgeVerdict:
    """One judgement: ``correct`` is None when the judge's reply could not be parsed."""

    correct: bool | None
    rationale: str
    reward_hacking: bool | None = None
    tries: int = 1


class LLMJudge:
    """Judge answers with any :class:`~searchprime.llm.base.LLM`; every call is cached.

    ``cache`` is a SQLite path (or a :class:`CallCache`); ``check_hacking`` adds the
    reward-hacking audit; ``prompts`` names the prompt set (``searchprime`` or ``bp``, see
    :mod:`searchprime.eval.judge_prompts`). ``caller.calls`` counts requests actually sent.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        cache: str | Path | CallCache | None = None,
        max_tokens: int = 256,
        retries: int = 2,
        check_hacking: bool = False,
        concurrency: int = 8,
        prompts: str | JudgePrompts = "searchprime",
    ):
        self.caller = CachedCaller.greedy(
            llm, cache, max_tokens=max_tokens, retries=retries, concurrency=concurrency
        )
        self.check_hacking = check_hacking
        self.prompts = get_judge_prompts(prompts)

    @property
    def name(self) -> str:
        return f"llm:{self.caller.model}"

    async def judge(
        self,
        question: str,
        prediction: str,
        golds: Sequence[str],
        data_source: str | None = None,
    ) -> JudgeVerdict:
        """Judge one prediction against its gold answers (``data_source`` picks the prompt
        where the set has several, as ``bp`` does)."""
        hacking: tuple[bool, str] | None = None
        if self.check_hacking:
            hacking = await self._audit(question, prediction)
            if hacking is not None and hacking[0] and self.prompts.hacking_zeroes_score:
                return JudgeVerdict(False, f"reward hacking: {hacking[1]}", True, tries=0)
        messages = self.prompts.judge_messages(question, prediction, golds, data_source)
        value, raw, tries = await self.caller.ask_json(
            messages, self.prompts.parse_judge, tag="judge"
        )
        if value is None:
            verdict = JudgeVerdict(None, f"unparseable judge reply: {raw[:200]!r}", tries=tries)
        else:
            verdict = JudgeVerdict(value[0], value[1], tries=tries)
        if self.check_hacking:
            verdict.reward_hacking = None if hacking is None else hacking[0]
        return verdict

    async def _audit(self, question: str, prediction: str) -> tuple[bool, str] | None:
        messages = self.prompts.hacking_messages(question, prediction)
        value, _, _ = await self.caller.ask_json(
            messages, self.prompts.parse_hacking, tag="hacking"
        )
        return value

    async def audit(self, question: str, prediction: str) -> bool | None:
        """Reward-hacking audit of one answer; None when unparseable."""
        value = await self._audit(question, prediction)
        return None if value is None else value[0]

    async def judge_many(
        self, items: Sequence[tuple[str, str, Sequence[str]]]
    ) -> list[JudgeVerdict]:
        """Judge ``(question, prediction, golds)`` items concurrently, in order."""
        return list(await asyncio.gather(*(self.judge(q, p, g) for q, p, g in items)))
