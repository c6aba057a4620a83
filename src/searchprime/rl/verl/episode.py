"""One verl rollout = one run of our agent loop, as verl's token-level output.

Runs :func:`~searchprime.agent.loop.run_agent` (same prompts, parser, reminders and search
backend as ``rollout`` and ``train rl``) through an :class:`~searchprime.rl.episode.EpisodeLLM`
whose sampler is verl's server manager, and returns what ``AgentLoopOutput`` needs: the first
model input as ``prompt_ids``; every later token as ``response_ids`` with ``response_mask`` 1 for
tokens the policy sampled and 0 for environment tokens (observations, reminders, chat-template
glue), exactly :class:`~searchprime.rl.episode.EpisodeTokens`' ``env_mask``. Nothing here
imports verl, so it is tested without it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from searchprime.agent.loop import run_agent
from searchprime.llm.base import SamplingParams
from searchprime.records import Message, Task, Trajectory
from searchprime.rl.config import EpisodeSettings
from searchprime.rl.episode import EpisodeLLM
from searchprime.rl.verl.reward import ANSWER_KEY
from searchprime.rl.verl.sampler import ServerManagerSampler

__all__ = ["VerlEpisode", "run_verl_episode", "task_from_row"]

_QUESTION = "Question:"


@dataclass
class VerlEpisode:
    """What one episode gives verl (token lists unpadded, response capped)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    num_turns: int
    trajectory: Trajectory
    extra_fields: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def task_from_row(row: Mapping[str, Any]) -> Task:
    """The task of a dataset row (either layout, or ``prime --format verl`` rows).

    The question is ``extra_info.question``, else the first user message (less a leading
    ``Question:``); golds come from the same places as the reward reads them.
    """
    from searchprime.rl.verl.reward import golds_of

    extra = dict(row.get("extra_info") or {})
    messages = list(_plain(row.get("raw_prompt", row.get("prompt"))) or [])
    question = extra.get("question")
    if not question:
        user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        question = user.strip()
        if question.startswith(_QUESTION):
            question = question[len(_QUESTION) :].strip()
    gt = (row.get("reward_model") or {}).get("ground_truth")
    task_id = extra.get("task_id", extra.get("id", extra.get("index", "")))
    return Task(
        id=str(task_id),
        question=str(question) or "?",
        answers=golds_of(_plain(gt), extra),
        data_source=row.get("data_source"),
    )


class _TemplateKwargs:
    """A tokenizer whose ``apply_chat_template`` always gets verl's
    ``data.apply_chat_template_kwargs`` (e.g. ``enable_thinking``)."""

    def __init__(self, tokenizer: Any, kwargs: Mapping[str, Any]):
        self._tok = tokenizer
        self._kwargs = dict(kwargs)

    def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
        return self._tok.apply_chat_template(*args, **{**self._kwargs, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._tok(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tok, name)


class _BudgetedEpisodeLLM(EpisodeLLM):
    """An EpisodeLLM whose length cap is known only at the first turn: the first model input
    plus verl's ``response_length`` (so no response verl receives is ever truncated)."""

    def __init__(self, sampler: Any, tokenizer: Any, *, response_length: int):
        super().__init__(sampler, tokenizer)
        self.response_length = response_length

    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Any:
        if self.prompt_ids is None:
            self.max_length = self.count_tokens(messages) + self.response_length
        return await super().complete(messages, params)


async def run_verl_episode(
    task: Task,
    *,
    server_manager: Any,
    sampling_params: Mapping[str, Any],
    tokenizer: Any,
    search: Any,
    episode: EpisodeSettings,
    response_length: int,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    stop_params: Mapping[str, Any] | None = None,
) -> VerlEpisode:
    """Run the agent loop once on ``task`` through verl's ``server_manager``."""
    from searchprime.rl.grpo import agent_config

    tok = _TemplateKwargs(tokenizer, chat_template_kwargs) if chat_template_kwargs else tokenizer
    sampler = ServerManagerSampler(
        server_manager,
        dict(sampling_params),
        tokenizer,
        request_id=uuid.uuid4().hex,
        stop_params=dict(stop_params) if stop_params is not None else None,
    )
    llm = _BudgetedEpisodeLLM(sampler, tok, response_length=response_length)
    temperature = float(sampling_params.get("temperature", 1.0))
    cfg = agent_config(SimpleNamespace(episode=episode), temperature)
    t0 = time.perf_counter()
    traj = await run_agent(task, llm, search, cfg)
    elapsed = time.perf_counter() - t0
    tokens = llm.tokens()
    n = min(len(tokens.completion_ids), response_length)
    has_logprobs = bool(sampling_params.get("logprobs")) and any(
        not math.isnan(x) for x, m in zip(tokens.logprobs, tokens.env_mask, strict=True) if m
    )
    search_s = sum(t.search_latency_s or 0.0 for t in traj.turns)
    return VerlEpisode(
        prompt_ids=tokens.prompt_ids,
        response_ids=tokens.completion_ids[:n],
        response_mask=tokens.env_mask[:n],
        # verl multiplies these by the mask; a NaN would survive that, so environment -> 0.0
        response_logprobs=[0.0 if math.isnan(x) else x for x in tokens.logprobs[:n]]
        if has_logprobs
        else None,
        num_turns=len(traj.messages) - 1,
        trajectory=traj,
        extra_fields={
            ANSWER_KEY: traj.final_answer,
            "searchprime_termination": traj.termination,
            "searchprime_turns": len(traj.turns),
            "searchprime_searches": sum(t.action.kind == "search" for t in traj.turns),
            "searchprime_broken": tokens.broken,
            "searchprime_stop_cuts": sampler.cuts,
        },
        timing={"generate_sequences": max(0.0, elapsed - search_s), "tool_calls": search_s},
    )
