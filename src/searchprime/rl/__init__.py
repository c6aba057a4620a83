"""RL with search in the loop: GRPO (TRL) whose episodes are the project's own agent loop.

``run_rl(RLRunConfig)`` trains; ``register_reward`` adds a reward; a ``TokenSampler`` (``hf``,
``llamacpp``) draws the episodes' tokens; ``EpisodeLLM`` turns one episode into one exact token
sequence with environment tokens masked. Nothing here imports torch until a run starts.
"""

from searchprime.rl.config import RLRunConfig
from searchprime.rl.episode import EpisodeLLM, EpisodeTokens
from searchprime.rl.grpo import RLSummary, build_trainer, read_steps, run_rl
from searchprime.rl.rewards import get_reward, register_reward, weighted_reward
from searchprime.rl.sampler import Sampled, TokenSampler

__all__ = [
    "EpisodeLLM",
    "EpisodeTokens",
    "RLRunConfig",
    "RLSummary",
    "Sampled",
    "TokenSampler",
    "build_trainer",
    "get_reward",
    "read_steps",
    "register_reward",
    "run_rl",
    "weighted_reward",
]
