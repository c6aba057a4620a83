"""Episode rewards: pure functions of a finished, scored trajectory, registered by name.

The RL config weights them by name (``rewards: {em: 1.0, format: 0.1}``); each becomes one of
TRL's reward functions, so TRL logs each one's mean and std and sums them with the weights.
Before rewards are read, every trajectory has been scored (``scores.em``, ``scores.f1``; the
LLM judge's ``scores.judge`` when a judge is configured) and labelled by the annotator (when
one is configured), so a reward never calls a model itself.

A user adds a reward from their own package without editing this one::

    from searchprime.rl.rewards import register_reward

    @register_reward("short")
    def short(traj):
        return 1.0 / (1 + len(traj.turns))

or names it in the config as ``py:my_pkg.rewards:short``.
"""

from __future__ import annotations

from collections.abc import Callable

from searchprime.errors import ConfigError
from searchprime.records import BEHAVIORS, Trajectory

__all__ = [
    "REWARDS",
    "RewardFn",
    "check_reward_weights",
    "get_reward",
    "register_reward",
    "weighted_reward",
]

RewardFn = Callable[[Trajectory], float]
#: Name -> reward function; filled by :func:`register_reward`.
REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Register ``fn`` under ``name`` (a decorator)."""

    def deco(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return deco


def get_reward(name: str) -> RewardFn:
    """The reward registered as ``name``, or ``py:module:function``."""
    if name.startswith("py:"):
        from searchprime._plugins import import_callable

        try:
            return import_callable(name, "reward")
        except ValueError as exc:
            raise ConfigError(f"rewards: {exc}") from None
    if name not in REWARDS:
        raise ConfigError(f"rewards: unknown reward {name!r}; known: {', '.join(sorted(REWARDS))}")
    return REWARDS[name]


def check_reward_weights(weights: dict[str, float]) -> dict[str, float]:
    """``weights`` if it names at least one registered reward and nothing else (a pydantic
    validator's ValueError otherwise, so the config error names the file and field)."""
    if not weights:
        raise ValueError("at least one reward is needed")
    for name in weights:
        try:
            get_reward(name)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("rewards: ")) from None
    return weights


def weighted_reward(traj: Trajectory, weights: dict[str, float]) -> float:
    """The total reward TRL computes: the weighted sum of the named rewards."""
    return sum(w * float(get_reward(name)(traj)) for name, w in weights.items())


def _answered(traj: Trajectory) -> bool:
    return traj.termination == "answer" and traj.final_answer is not None


@register_reward("em")
def em(traj: Trajectory) -> float:
    """1 for an exact-match answer, else 0 (no answer, out of turns or an error: 0)."""
    return float(traj.scores.em or 0.0) if _answered(traj) and traj.scores else 0.0


@register_reward("f1")
def f1(traj: Trajectory) -> float:
    """Token F1 of the answer against the best gold (partial credit)."""
    return float(traj.scores.f1 or 0.0) if _answered(traj) and traj.scores else 0.0


@register_reward("answered")
def answered(traj: Trajectory) -> float:
    """1 when the episode ended with an answer inside the turn budget (out of turns, an
    invalid last turn or an error: 0). A small weight next to ``em`` gives a gradient to
    groups where every answer is wrong but some episodes loop to the turn limit."""
    return 1.0 if _answered(traj) else 0.0


@register_reward("judge")
def judge(traj: Trajectory) -> float:
    """1 when the LLM judge found the answer correct (the paper's reward); unknown counts 0."""
    return 1.0 if _answered(traj) and traj.scores and traj.scores.judge else 0.0


@register_reward("format")
def format_reward(traj: Trajectory) -> float:
    """Fraction of turns whose response held exactly one valid action."""
    if not traj.turns:
        return 0.0
    return sum(t.action.kind != "invalid" for t in traj.turns) / len(traj.turns)


@register_reward("behavior")
def behavior(traj: Trajectory) -> float:
    """Fraction of the four behaviors the annotator found (0 without labels).

    With the rules annotator this rewards the teachers' *phrasing* of a behavior, not the
    behavior itself: off by default, and meant as a small bonus next to an answer reward.
    """
    if traj.labels is None:
        return 0.0
    return sum(traj.labels.has(b) for b in BEHAVIORS) / len(BEHAVIORS)
