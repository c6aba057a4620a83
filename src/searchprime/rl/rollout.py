"""TRL's ``rollout_func`` for GRPO: one agent episode per row, scored, logged and tokenized.

Each optimizer step TRL hands :class:`RolloutFunc` a batch of task ids, each repeated
``num_generations`` times consecutively (one GRPO group per task). The rollout function

1. gives the sampler the trainer's current weights when the step has changed (llama.cpp: save,
   export to GGUF, restart; hf: nothing, it decodes with the trainer's model itself);
2. runs one agent episode per row through :class:`~searchprime.rl.episodes.EpisodeRunner` —
   the same agent loop as ``rollout`` — and scores and labels each trajectory;
3. returns each episode as one token sequence: ``prompt_ids``, ``completion_ids`` (sampled ids
   and environment tokens in order), ``env_mask`` (0 = environment: zero gradient) and the
   sampler's ``logprobs``; the trajectories ride along for the reward functions;
4. writes the step's trajectories to ``episodes/step-NNNNNN.jsonl`` and its statistics (reward,
   EM, zero-variance groups, valid actions, turns, searches, tokens, behavior rates, time split)
   for the step log (:mod:`searchprime.rl.steps`).
"""

from __future__ import annotations

import json
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError
from searchprime.records import BEHAVIORS, Task, write_jsonl
from searchprime.rl.episodes import Episode, EpisodeRunner
from searchprime.rl.rewards import get_reward, weighted_reward

__all__ = ["EPISODES_DIR", "RolloutFunc", "step_stats", "trl_reward_funcs"]

#: Folder of the output folder that gets one ``step-NNNNNN.jsonl`` of trajectories per step.
EPISODES_DIR = "episodes"


def step_stats(episodes: list[Episode], rewards: list[float], group: int) -> dict[str, Any]:
    """Statistics of one step's episodes (``group`` consecutive episodes per task)."""
    trajs = [e.trajectory for e in episodes]
    turns = [t for tr in trajs for t in tr.turns]
    groups = [rewards[i : i + group] for i in range(0, len(rewards), group)]
    n = len(trajs) or 1
    out: dict[str, Any] = {
        "episodes": len(trajs),
        "reward_mean": statistics.fmean(rewards) if rewards else 0.0,
        "reward_std": statistics.pstdev(rewards) if len(rewards) > 1 else 0.0,
        "em": sum(float(tr.scores.em or 0) for tr in trajs if tr.scores) / n,
        "zero_std_groups": sum(max(g) == min(g) for g in groups) / (len(groups) or 1),
        "valid_actions": sum(t.action.kind != "invalid" for t in turns) / (len(turns) or 1),
        "answered": sum(tr.termination == "answer" for tr in trajs) / n,
        "out_of_turns": sum(tr.termination == "max_turns" for tr in trajs) / n,
        "errors": sum(tr.termination == "error" for tr in trajs),
        "turns": len(turns) / n,
        "searches": sum(tr.n_searches for tr in trajs) / n,
        "policy_tokens": sum(e.tokens.policy_tokens for e in episodes),
        "env_tokens": sum(len(e.tokens.completion_ids) - e.tokens.policy_tokens for e in episodes),
        "broken_sequences": sum(e.tokens.broken is not None for e in episodes),
    }
    if any(tr.labels is not None for tr in trajs):
        out["behaviors"] = {
            b: sum(bool(tr.labels and tr.labels.has(b)) for tr in trajs) / n for b in BEHAVIORS
        }
    return out


def _seed(*parts: Any) -> int:
    return zlib.crc32(json.dumps(parts).encode()) & 0x7FFFFFFF


class RolloutFunc:
    """TRL's ``rollout_func``: task ids in, token sequences (and trajectories) out."""

    def __init__(
        self,
        runner: EpisodeRunner,
        tasks: dict[str, Task],
        rewards: dict[str, float],
        out_dir: Path,
        *,
        seed: int = 0,
        synced_step: int = 0,
    ):
        self.runner = runner
        self.tasks = tasks
        self.rewards = rewards
        self.out_dir = out_dir
        self.seed = seed
        self.synced_step = synced_step
        #: statistics per optimizer step (filled here, written to steps.jsonl by the logger)
        self.pending: dict[int, dict[str, Any]] = {}

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        step = int(trainer.state.global_step)
        sync_s = 0.0
        model = trainer.accelerator.unwrap_model(trainer.model)
        if step != self.synced_step:
            sync_s = self.runner.sampler.sync_weights(model)
            self.synced_step = step
        try:
            tasks = [self.tasks[str(p)] for p in prompts]
        except KeyError as exc:
            raise ConfigError(f"rollout: prompt {exc} is not a known task id") from None
        group = int(trainer.num_generations)
        seeds = [_seed(self.seed, step, i, t.id) for i, t in enumerate(tasks)]
        attempts = [i % group for i in range(len(tasks))]
        t0 = time.perf_counter()
        training = model.training
        model.eval()
        try:
            episodes = self.runner.run(tasks, seeds, attempts)
        finally:
            model.train(training)
        rollout_s = time.perf_counter() - t0
        rewards = [weighted_reward(e.trajectory, self.rewards) for e in episodes]
        for i, (e, r) in enumerate(zip(episodes, rewards, strict=True)):
            e.trajectory.meta["rl"].update(step=step + 1, group=i // group, reward=r)
        write_jsonl(
            self.out_dir / EPISODES_DIR / f"step-{step + 1:06d}.jsonl",
            [e.trajectory for e in episodes],
        )
        stats = step_stats(episodes, rewards, group)
        stats["time"] = {"rollout_s": round(rollout_s, 3), "sync_s": round(sync_s, 3)}
        self.pending[step + 1] = stats
        return {
            "prompt_ids": [e.tokens.prompt_ids for e in episodes],
            "completion_ids": [e.tokens.completion_ids for e in episodes],
            "logprobs": [e.tokens.logprobs for e in episodes],
            "env_mask": [e.tokens.env_mask for e in episodes],
            "trajectory": [e.trajectory for e in episodes],
        }


def trl_reward_funcs(rewards: dict[str, float]) -> list[Callable[..., list[float]]]:
    """One TRL reward function per named reward; each reads the rollout's trajectories."""
    funcs = []
    for name in rewards:
        fn = get_reward(name)

        def reward(prompts: list, completions: list, trajectory: list, _fn=fn, **_: Any):
            return [float(_fn(t)) for t in trajectory]

        reward.__name__ = name.replace(":", "_").replace(".", "_")
        funcs.append(reward)
    return funcs
