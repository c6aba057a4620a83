"""Selection strategies: predicates over trajectories, registered by name.

The CLI and configs name a strategy as ``name[:arg]``, and a run records exactly which one it
used. A package adds its own with :func:`register_strategy`:

>>> @register_strategy("long", "more than five turns")
... def _long(arg, cfg):
...     return lambda t: len(t.turns) > 5
>>> get_strategy("long")[0].description
'more than five turns'
>>> del STRATEGIES["long"]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from searchprime.data.config import SelectionConfig, recorded_correct
from searchprime.data.expr import EXPR_NAMES, compile_expression
from searchprime.errors import ConfigError
from searchprime.records import BEHAVIORS, Trajectory
from searchprime.records.behavior import BehaviorLabels

__all__ = ["STRATEGIES", "Predicate", "Strategy", "get_strategy", "register_strategy"]

Predicate = Callable[[Trajectory], bool]
Build = Callable[[str | None, SelectionConfig], Predicate]


@dataclass(frozen=True)
class Strategy:
    """A named selection strategy: ``build(arg, config)`` returns the predicate."""

    name: str
    description: str
    build: Build
    needs_labels: bool = False
    needs_scores: bool = False
    takes_arg: bool = False


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(
    name: str,
    description: str,
    *,
    needs_labels: bool = False,
    needs_scores: bool = False,
    takes_arg: bool = False,
) -> Callable[[Build], Any]:
    """Register ``build(arg, config) -> predicate`` under ``name`` (decorator)."""

    def deco(build: Build) -> Any:
        STRATEGIES[name] = Strategy(
            name, description, build, needs_labels, needs_scores, takes_arg=takes_arg
        )
        return build

    return deco


def get_strategy(spec: str) -> tuple[Strategy, str | None]:
    """Split ``name[:arg]`` and look the name up; unknown names are a :class:`ConfigError`."""
    name, sep, arg = spec.partition(":")
    strat = STRATEGIES.get(name)
    if strat is None:
        known = ", ".join(f"{s.name}:<arg>" if s.takes_arg else s.name for s in STRATEGIES.values())
        raise ConfigError(f"strategy: unknown strategy {spec!r}; known: {known}")
    if strat.takes_arg and not arg:
        raise ConfigError(f"strategy: {name!r} needs an argument, e.g. {name}:<value>")
    if not strat.takes_arg and sep:
        raise ConfigError(f"strategy: {name!r} takes no argument (got {spec!r})")
    return strat, (arg or None)


def _labels(traj: Trajectory) -> BehaviorLabels:
    assert traj.labels is not None  # checked before predicates run
    return traj.labels


@register_strategy(
    "behavior", "all behaviors of the set present (right or wrong answer)", needs_labels=True
)
def _behavior(arg: str | None, cfg: SelectionConfig) -> Predicate:
    names = tuple(cfg.behaviors)
    return lambda t: _labels(t).has_all(names)


@register_strategy(
    "behavior-incorrect",
    "all behaviors of the set present and the answer wrong",
    needs_labels=True,
    needs_scores=True,
)
def _behavior_incorrect(arg: str | None, cfg: SelectionConfig) -> Predicate:
    names = tuple(cfg.behaviors)
    return lambda t: _labels(t).has_all(names) and not recorded_correct(t, cfg.correctness)


@register_strategy("correct", "the final answer is right (behaviors ignored)", needs_scores=True)
def _correct(arg: str | None, cfg: SelectionConfig) -> Predicate:
    return lambda t: recorded_correct(t, cfg.correctness)


@register_strategy("random", "any trajectory")
def _random(arg: str | None, cfg: SelectionConfig) -> Predicate:
    return lambda t: True


@register_strategy("single", "one behavior present", needs_labels=True, takes_arg=True)
def _single(arg: str | None, cfg: SelectionConfig) -> Predicate:
    if arg not in BEHAVIORS:
        raise ConfigError(
            f"strategy: single:{arg}: unknown behavior; known: {', '.join(BEHAVIORS)}"
        )
    return lambda t: _labels(t).has(arg)


@register_strategy("py", "a Python function module:function(traj) -> bool", takes_arg=True)
def _py(arg: str | None, cfg: SelectionConfig) -> Predicate:
    from searchprime._plugins import import_callable

    try:
        fn = import_callable(f"py:{arg or ''}", "strategy")
    except ValueError as exc:
        raise ConfigError(f"strategy: {exc}") from None
    return lambda t: bool(fn(t))


@register_strategy("expr", "a small expression over the trajectory: " + EXPR_NAMES, takes_arg=True)
def _expr(arg: str | None, cfg: SelectionConfig) -> Predicate:
    return compile_expression(arg or "", cfg)
