"""Run groups of agent episodes for RL and turn them into the trainer's rows.

:class:`EpisodeRunner` runs :func:`~searchprime.agent.loop.run_agent` (the one agent loop) on
many tasks at once through one :class:`EpisodeLLM` per episode, scores each finished
trajectory (EM/F1, the LLM judge when configured), labels it (the annotator when configured)
and returns it with its token sequence. It owns one event loop for the whole run, so async
clients (a llama.cpp sampler, an HTTP search backend) keep their connections across steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from searchprime.records import Task, Trajectory
from searchprime.rl.episode import EpisodeLLM, EpisodeTokens
from searchprime.rl.sampler import TokenSampler

__all__ = ["Episode", "EpisodeRunner"]


@dataclass
class Episode:
    """One finished episode: what the agent did and the token sequence to train on."""

    trajectory: Trajectory
    tokens: EpisodeTokens
    sampler_inputs: list[list[int]]


class EpisodeRunner:
    """Runs episodes with the agent loop; scores and labels them.

    Args:
        sampler: the token sampler shared by all episodes.
        tokenizer: the policy's tokenizer.
        search: the search backend.
        agent: the agent loop's :class:`~searchprime.agent.loop.AgentConfig` (its sampling
            settings are the RL sampling settings).
        max_length: most prompt + completion tokens per episode.
        concurrency: episodes in flight at once.
        annotator: ``async annotate(traj) -> BehaviorLabels`` or None.
        judge: an :class:`~searchprime.eval.judge.LLMJudge` or None.
    """

    def __init__(
        self,
        sampler: TokenSampler,
        tokenizer: Any,
        search: Any,
        agent: Any,
        *,
        max_length: int | None = None,
        concurrency: int = 16,
        annotator: Any = None,
        judge: Any = None,
    ):
        self.sampler, self.tokenizer, self.search, self.agent = sampler, tokenizer, search, agent
        self.max_length = max_length
        self.concurrency = concurrency
        self.annotator = annotator
        self.judge = judge
        self.loop = asyncio.new_event_loop()

    def run(
        self, tasks: Sequence[Task], seeds: Sequence[int], attempts: Sequence[int]
    ) -> list[Episode]:
        """Run one episode per ``(task, seed, attempt)``, in order; returns them in order."""
        return self.loop.run_until_complete(self._run_all(tasks, seeds, attempts))

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the runner's event loop (e.g. the sampler's ``aclose``)."""
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Close the event loop (after the sampler and search were closed on it)."""
        self.loop.close()

    async def _run_all(
        self, tasks: Sequence[Task], seeds: Sequence[int], attempts: Sequence[int]
    ) -> list[Episode]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(task: Task, seed: int, attempt: int) -> Episode:
            async with gate:
                return await self._episode(task, seed, attempt)

        return list(
            await asyncio.gather(
                *(one(t, s, a) for t, s, a in zip(tasks, seeds, attempts, strict=True))
            )
        )

    async def _episode(self, task: Task, seed: int, attempt: int) -> Episode:
        from searchprime.agent.loop import run_agent
        from searchprime.eval.score import score_one

        llm = EpisodeLLM(self.sampler, self.tokenizer, max_length=self.max_length)
        traj = await run_agent(task, llm, self.search, self.agent, attempt=attempt, seed=seed)
        traj.scores = score_one(traj, traj.answers)
        if self.judge is not None and traj.final_answer is not None:
            verdict = await self.judge.judge(traj.question, traj.final_answer, traj.answers)
            traj.scores.judge = verdict.correct
            traj.scores.judge_rationale = verdict.rationale
        if self.annotator is not None:
            traj.labels = await self.annotator.annotate(traj)
        tokens = llm.tokens()
        traj.meta["rl"] = {
            "policy_tokens": tokens.policy_tokens,
            "env_tokens": len(tokens.completion_ids) - tokens.policy_tokens,
            "prompt_tokens": len(tokens.prompt_ids),
            "broken": tokens.broken,
            "reopened": llm.reopened,
        }
        return Episode(traj, tokens, llm.sampler_inputs)
