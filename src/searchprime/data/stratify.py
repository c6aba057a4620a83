"""Stratified draws: split ``n`` over the values of a task field, keeping the pool's mix.

The field is a top-level scalar of the task (``data_source``) or a key of its meta (``hops``).

>>> allocate(10, {"1": 37, "2": 43, "3": 20}, {"1": 50, "2": 30, "3": 1})
{'1': 4, '2': 5, '3': 1}
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from searchprime.errors import ConfigError, SelectionError
from searchprime.records import Task, Trajectory

__all__ = ["allocate", "stratified_draw", "stratum_of"]


#: Task fields that hold one value each (``answers`` and ``meta`` do not).
_TOP_LEVEL = ("data_source", "id", "question")


def stratum_of(traj: Trajectory, field: str, tasks: Mapping[str, Task]) -> str:
    """The value of ``field`` for the task ``traj`` was rolled out on.

    ``field`` is a top-level task field (``data_source``), else a key of the task's meta;
    a dotted name reaches into a meta object (``extra_info.split``). The value must be a
    scalar: an object or a list has no single value to keep the mix of (ConfigError).
    """
    task = tasks.get(traj.task_id)
    if task is None:
        raise SelectionError(
            f"stratify: {field}: task {traj.task_id!r} is not among the tasks given "
            "(pass the task file the trajectories were rolled out on)"
        )
    if field in _TOP_LEVEL:
        value = getattr(task, field)
        if value is None:
            raise SelectionError(f"stratify: task {traj.task_id!r} has no {field}")
    else:
        value = _meta_value(task, field)
    if isinstance(value, (dict, list, tuple)):
        kind = "an object" if isinstance(value, dict) else "a list"
        hint = f", e.g. {field}.{next(iter(value))}" if isinstance(value, dict) and value else ""
        raise ConfigError(
            f"stratify: {field}: is {kind} in task {traj.task_id!r}, not a single value; "
            f"stratify by a scalar field (data_source, a meta key, or a dotted key{hint})"
        )
    return str(value)


def _meta_value(task: Task, field: str) -> object:
    keys = [field] if field in task.meta else field.split(".")
    value: object = task.meta
    for i, key in enumerate(keys):
        if not isinstance(value, dict) or value.get(key) is None:
            where = "meta field" if i == 0 else f"key {key!r} in meta field"
            name = ".".join(keys[: max(i, 1)])
            raise SelectionError(f"stratify: task {task.id!r} has no {where} {name!r}")
        value = value[key]
    return value


def allocate(n: int, shares: Mapping[str, int], available: Mapping[str, int]) -> dict[str, int]:
    """Split ``n`` over strata in proportion to ``shares``, never above ``available``.

    Water-filling: a stratum whose share exceeds what it has gives everything, and the rest
    of ``n`` is split over the others in proportion again; then largest-remainder rounding.
    Returns less than ``n`` in all only if ``available`` sums to less.
    """
    quota = dict.fromkeys(available, 0)
    open_ = sorted(k for k, v in available.items() if v > 0)
    while open_:
        rest = n - sum(quota.values())
        weights = {k: shares.get(k, 0) for k in open_}
        if not any(weights.values()):
            weights = dict.fromkeys(open_, 1)
        total = sum(weights.values())
        exact = {k: rest * w / total for k, w in weights.items()}
        short = [k for k in open_ if exact[k] >= available[k]]
        if not short:
            give = {k: int(v) for k, v in exact.items()}
            by_remainder = sorted(open_, key=lambda k: give[k] - exact[k])
            for k in by_remainder[: rest - sum(give.values())]:
                give[k] += 1  # exact < available, so rounding up stays within it
            quota.update(give)
            break
        for k in short:
            quota[k] = available[k]
        open_ = [k for k in open_ if k not in short]
    return quota


def stratified_draw(
    unique: list[Trajectory],
    n: int,
    stratum: Mapping[str, str],
    pool: Mapping[str, int],
    rng: random.Random,
) -> list[Trajectory]:
    """Draw ``n`` of ``unique`` with :func:`allocate`'s quota per stratum (task id -> value)."""
    groups: dict[str, list[Trajectory]] = {}
    for t in unique:
        groups.setdefault(stratum[t.task_id], []).append(t)
    quota = allocate(n, pool, {k: len(v) for k, v in groups.items()})
    return [t for k in sorted(groups) for t in rng.sample(groups[k], quota[k])]
