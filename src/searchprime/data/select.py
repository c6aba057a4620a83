"""Choose the trajectories an SFT arm trains on: named strategies, exact sizes, dedup, a card.

Strategies (:mod:`searchprime.data.strategies`) are predicates over
:class:`~searchprime.records.Trajectory`, registered by name so the CLI and configs can name
them and a run records exactly which one it used:

=====================  =====================================================================
``behavior``           every behavior of the set (default: all four) present in the labels
``behavior-incorrect`` the same, and the final answer is wrong
``correct``            the final answer is right (behaviors ignored)
``random``             any trajectory
``single:<behavior>``  that one behavior present
``expr:<expression>``  a small expression, e.g. ``expr:correct and n_searches >= 2``
``py:<module>:<func>`` any Python function ``func(traj) -> bool``
=====================  =====================================================================

Every strategy first drops trajectories that ended in a backend error, and (by default) those
that never answered; then duplicates (same task, same action sequence) are removed, keeping
the first; then exactly ``n`` are drawn with ``seed`` so that arms compare at equal size
(stratified by a task field with :mod:`searchprime.data.stratify`). The result carries its
:class:`~searchprime.data.card.SelectionCard`.

>>> SelectionConfig(strategy="single:adaptive_search", n=10).strategy
'single:adaptive_search'
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from searchprime.data.card import SelectionCard, make_card
from searchprime.data.config import SelectionConfig
from searchprime.data.expr import EXPR_NAMES
from searchprime.data.strategies import STRATEGIES, Strategy, get_strategy, register_strategy
from searchprime.data.stratify import allocate, stratified_draw, stratum_of
from searchprime.errors import ConfigError, SelectionError
from searchprime.records import Task, Trajectory

__all__ = [
    "EXPR_NAMES",
    "STRATEGIES",
    "Selection",
    "SelectionCard",
    "SelectionConfig",
    "SelectionError",
    "Strategy",
    "action_signature",
    "allocate",
    "dedup",
    "get_strategy",
    "register_strategy",
    "select_trajectories",
]


def action_signature(traj: Trajectory) -> tuple[tuple[str, str], ...]:
    """The action sequence (kind, whitespace/case-normalised content) used for dedup."""
    return tuple((t.action.kind, " ".join(t.action.content.lower().split())) for t in traj.turns)


def dedup(trajs: Iterable[Trajectory]) -> list[Trajectory]:
    """Keep the first trajectory of each (task id, action sequence)."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    kept = []
    for t in trajs:
        key = (t.task_id, action_signature(t))
        if key not in seen:
            seen.add(key)
            kept.append(t)
    return kept


@dataclass
class Selection:
    """Selected trajectories (in input order) and their card."""

    trajectories: list[Trajectory]
    card: SelectionCard


def _check_needs(strat: Strategy, trajs: list[Trajectory]) -> None:
    for need, attr, fix in (
        (strat.needs_labels, "labels", "searchprime behaviors annotate"),
        (strat.needs_scores, "scores", "searchprime score"),
    ):
        if not need:
            continue
        missing = [t for t in trajs if getattr(t, attr) is None]
        if missing:
            first = missing[0]
            raise SelectionError(
                f"strategy {strat.name!r} needs {attr}, but {len(missing)} of {len(trajs)} "
                f"trajectories have none (first: task {first.task_id} attempt {first.attempt}); "
                f"run `{fix}` first"
            )


def select_trajectories(
    trajs: Iterable[Trajectory],
    config: SelectionConfig,
    tasks: Mapping[str, Task] | None = None,
) -> Selection:
    """Apply ``config`` to ``trajs``: filter, match, dedup, draw exactly ``config.n``.

    ``tasks`` (id -> task) is needed only by ``config.stratify``.
    """
    strat, arg = get_strategy(config.strategy)
    pred = strat.build(arg, config)
    every = list(trajs)
    usable = [
        t
        for t in every
        if t.termination != "error" and (t.termination == "answer" or not config.require_answer)
    ]
    _check_needs(strat, usable)
    stratum: dict[str, str] | None = None  # task id -> value of the stratify field
    if config.stratify:
        if tasks is None:
            raise ConfigError(
                f"stratify: {config.stratify!r} needs the tasks the trajectories were rolled out on"
            )
        stratum = {t.task_id: stratum_of(t, config.stratify, tasks) for t in usable}
        pool = Counter(stratum[t.task_id] for t in usable)
    matched = [t for t in usable if pred(t)]
    unique = dedup(matched) if config.dedup else matched
    counts = {"read": len(every), "usable": len(usable), "matched": len(matched)}
    if config.dedup:
        counts["unique"] = len(unique)
    if config.n is not None:
        if len(unique) < config.n:
            raise SelectionError(
                f"strategy {config.strategy!r} kept {len(unique)} trajectories "
                f"({', '.join(f'{k} {v}' for k, v in counts.items())}), fewer than n={config.n}; "
                "lower n or collect more trajectories"
            )
        order = {id(t): i for i, t in enumerate(unique)}
        rng = random.Random(config.seed)
        if stratum is not None:
            chosen = stratified_draw(unique, config.n, stratum, pool, rng)
        else:
            chosen = rng.sample(unique, config.n)
        chosen.sort(key=lambda t: order[id(t)])
    else:
        chosen = unique
    counts["selected"] = len(chosen)
    card = make_card(strat.description, config, counts, chosen)
    if stratum is not None:
        picked = Counter(stratum[t.task_id] for t in chosen)
        card.strata = {k: {"pool": pool[k], "selected": picked[k]} for k in sorted(pool)}
    return Selection(chosen, card)
