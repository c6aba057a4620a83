"""The search agent: prompts, action parsing, the agent loop and concurrent rollouts."""

from searchprime.agent.actions import ACTION_TAGS, parse_action
from searchprime.agent.loop import ACTION_STOPS, AgentConfig, default_sampling, run_agent
from searchprime.agent.rollout import (
    RolloutSummary,
    attempt_seed,
    finished_keys,
    rollout,
    run_rollout,
)

__all__ = [
    "ACTION_STOPS",
    "ACTION_TAGS",
    "AgentConfig",
    "RolloutSummary",
    "attempt_seed",
    "default_sampling",
    "finished_keys",
    "parse_action",
    "rollout",
    "run_agent",
    "run_rollout",
]
