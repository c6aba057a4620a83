"""Sampling metrics from n samples per task: pass@k, avg@k and maj@k, overall and per group.

All three are the expectation over the C(n, k) subsets of k of the task's n samples, computed
exactly (no enumeration, no random draws):

* **pass@k**: some sample of the k is correct — the unbiased estimator of Chen et al. 2021
  (Codex), 1 - C(n-c, k)/C(n, k), in its product form 1 - prod_{i=n-c+1}^{n} (1 - k/i), which
  never forms a large binomial;
* **avg@k**: the mean correctness of the k samples; its expectation is c/n for every k;
* **maj@k**: the majority vote of the k samples is correct. A sample votes for its answer
  normalised by :func:`~searchprime.eval.metrics.normalize_answer`; a sample without an answer
  (or with one that normalises to nothing, such as "the") does not vote, and k samples none
  of which voted score 0. **Ties** among the most voted answers are broken uniformly at
  random, so a tie scores the mean correctness of the tied answers (in expectation). An
  answer's correctness is the share of the task's samples with that normalised answer judged
  correct — 0 or 1 whenever correctness is a function of the answer, as exact match is.

>>> round(pass_at_k(n=4, c=1, k=2), 6)  # 1 - C(3,2)/C(4,2)
0.5
>>> maj_at_k(["Paris", "paris", "Lyon", None], [True, True, False, False], k=4)
1.0

Honest denominators: :func:`collect_samples` pads a task that has fewer than n trajectories
with failed, unanswered samples, and a task of ``tasks`` with no trajectory at all is n of them.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import comb

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from searchprime.eval.metrics import normalize_answer
from searchprime.eval.score import is_correct
from searchprime.eval.uncertainty import Estimate, mean_ci
from searchprime.records import Task, Trajectory

__all__ = [
    "METRICS",
    "GroupSampling",
    "SamplingReport",
    "TaskSamples",
    "avg_at_k",
    "collect_samples",
    "maj_at_k",
    "pass_at_k",
    "per_task",
    "sampling_report",
]

#: The per-task metrics :func:`per_task` computes.
METRICS: tuple[str, ...] = ("pass", "avg", "maj")


def _check_nck(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(some of k samples drawn without replacement from n, c correct, is correct)."""
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def avg_at_k(n: int, c: int, k: int) -> float:
    """Expected mean correctness of k of the n samples: c/n for every k."""
    _check_nck(n, c, k)
    return c / n


def _vote_groups(
    answers: Sequence[str | None], correct: Sequence[bool]
) -> tuple[list[int], list[Fraction], int]:
    """Counts and correctness shares of each distinct normalised answer; the non-voters."""
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} correctness values")
    members: dict[str, list[bool]] = defaultdict(list)
    silent = 0
    for ans, ok in zip(answers, correct, strict=True):
        key = normalize_answer(ans) if ans is not None else ""
        if key:
            members[key].append(bool(ok))
        else:
            silent += 1
    counts = [len(v) for v in members.values()]
    shares = [Fraction(sum(v), len(v)) for v in members.values()]
    return counts, shares, silent


@functools.lru_cache(maxsize=4096)
def _win_weight(m: int, others: tuple[int, ...], silent: int, k: int) -> Fraction:
    """Sum over k-subsets of 1{a group of m samples ties for the most votes} / (number tied),
    ``others`` being the sizes of the other groups (sorted: one cache entry per profile)."""
    total = Fraction(0)
    for v in range(1, min(m, k) + 1):
        # ways[(s, t)]: choices of s samples from the other groups, none over v votes, t at v
        ways: dict[tuple[int, int], int] = {(0, 0): 1}
        for size in others:
            nxt: dict[tuple[int, int], int] = defaultdict(int)
            for (s, t), w in ways.items():
                for x in range(min(size, v, k - v - s) + 1):
                    nxt[(s + x, t + (x == v))] += w * comb(size, x)
            ways = nxt
        for (s, t), w in ways.items():
            rest = k - v - s
            if rest <= silent:
                total += Fraction(comb(m, v) * w * comb(silent, rest), t + 1)
    return total


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """Expected correctness of the majority vote of k of the samples (see the module doc)."""
    n = len(answers)
    _check_nck(n, 0, k)
    counts, shares, silent = _vote_groups(answers, correct)
    # a group's chance to win depends only on its size and the other sizes
    share_by_size: dict[int, Fraction] = defaultdict(Fraction)
    for m, share in zip(counts, shares, strict=True):
        share_by_size[m] += share
    score = Fraction(0)
    for m, share in share_by_size.items():
        if share:
            others = list(counts)
            others.remove(m)
            score += share * _win_weight(m, tuple(sorted(others)), silent, k)
    return float(score / comb(n, k))


@dataclass(frozen=True)
class TaskSamples:
    """The n samples of one task: correctness and answer of each, and the task's groups."""

    task_id: str
    correct: tuple[bool, ...]
    answers: tuple[str | None, ...]
    data_source: str = "unknown"
    hops: int | None = None
    traps: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def c(self) -> int:
        return sum(self.correct)


def collect_samples(
    trajs: Iterable[Trajectory],
    tasks: Iterable[Task] | None = None,
    *,
    n: int | None = None,
    correct: Callable[[Trajectory], bool] | None = None,
    metric: str = "auto",
    answer: Callable[[Trajectory], str | None] | None = None,
) -> list[TaskSamples]:
    """Group trajectories by task into :class:`TaskSamples` of exactly ``n`` samples each.

    ``n``: samples per task (default: the most any task has); the first ``n`` attempts by
    attempt index are used and missing ones count as failed, unanswered samples. ``tasks``
    adds the tasks that have no trajectory (n failed samples each) and gives data_source,
    ``meta.hops`` and ``meta.traps``. ``correct`` decides a sample's correctness (default
    :func:`~searchprime.eval.score.is_correct` with ``metric``); ``answer`` its vote (default
    the final answer). A ``(task_id, attempt)`` given twice counts once, by its last record
    (as ``score_file`` treats a rerun's retry).
    """
    judge = correct or (lambda t: is_correct(t, metric))
    vote = answer or (lambda t: t.final_answer)
    by_task: dict[str, dict[int, Trajectory]] = defaultdict(dict)
    for t in trajs:
        by_task[t.task_id][t.attempt] = t  # a repeated (task, attempt): the last one wins
    task_of = {t.id: t for t in tasks} if tasks is not None else {}
    ids = list(task_of) + [tid for tid in by_task if tid not in task_of]
    if n is None:
        n = max((len(v) for v in by_task.values()), default=1)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = []
    for tid in ids:
        attempts = [by_task[tid][a] for a in sorted(by_task.get(tid, {}))][:n]
        task = task_of.get(tid)
        source = next((t.data_source for t in attempts if t.data_source), None)
        source = source or (task.data_source if task else None) or "unknown"
        meta = task.meta if task else {}
        pad = n - len(attempts)
        out.append(
            TaskSamples(
                task_id=tid,
                correct=tuple(bool(judge(t)) for t in attempts) + (False,) * pad,
                answers=tuple(vote(t) for t in attempts) + (None,) * pad,
                data_source=source,
                hops=meta.get("hops"),
                traps=tuple(meta.get("traps", ())),
            )
        )
    return out


def per_task(samples: Sequence[TaskSamples], metric: str, k: int) -> np.ndarray:
    """One value of ``metric`` (pass / avg / maj) at ``k`` per task, in input order."""
    if metric == "pass":
        return np.array([pass_at_k(s.n, s.c, k) for s in samples])
    if metric == "avg":
        return np.array([avg_at_k(s.n, s.c, k) for s in samples])
    if metric == "maj":
        return np.array([maj_at_k(s.answers, s.correct, k) for s in samples])
    raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")


class GroupSampling(BaseModel):
    """pass@k / avg@k / maj@k over one group of tasks, each with its bootstrap CI over tasks."""

    model_config = ConfigDict(extra="forbid")

    tasks: int = Field(description="Tasks in the group (the denominator).")
    n: int = Field(description="Samples per task.")
    metrics: dict[str, Estimate] = Field(description="'pass@k', 'avg@k', 'maj@k' -> estimate.")


class SamplingReport(BaseModel):
    """Sampling metrics overall and per data_source / hops / trap."""

    model_config = ConfigDict(extra="forbid")

    n: int
    ks: list[int]
    overall: GroupSampling
    by_source: dict[str, GroupSampling]
    by_hops: dict[str, GroupSampling] = Field(description="Empty when no task has meta.hops.")
    by_trap: dict[str, GroupSampling] = Field(
        description="A task counts under each of its traps; 'none' = no trap. Empty without "
        "task meta."
    )


def _group(
    samples: list[TaskSamples], ks: list[int], level: float, resamples: int, seed: int
) -> GroupSampling:
    metrics = {
        f"{m}@{k}": mean_ci(per_task(samples, m, k), level=level, resamples=resamples, seed=seed)
        for m in METRICS
        for k in ks
    }
    return GroupSampling(tasks=len(samples), n=samples[0].n, metrics=metrics)


def sampling_report(
    samples: Sequence[TaskSamples],
    ks: Sequence[int] | None = None,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> SamplingReport:
    """pass@k, avg@k and maj@k for each k of ``ks`` (default 1..n), overall and per group."""
    samples = list(samples)
    if not samples:
        raise ValueError("no tasks to report on")
    n = samples[0].n
    if any(s.n != n for s in samples):
        raise ValueError("every task needs the same number of samples (see collect_samples)")
    ks = sorted(set(ks)) if ks is not None else list(range(1, n + 1))
    if not ks or ks[0] < 1 or ks[-1] > n:
        raise ValueError(f"ks must lie in 1..{n}, got {ks}")

    def groups(key: Callable[[TaskSamples], Iterable[str]]) -> dict[str, GroupSampling]:
        members: dict[str, list[TaskSamples]] = defaultdict(list)
        for s in samples:
            for g in key(s):
                members[g].append(s)
        return {g: _group(members[g], ks, level, resamples, seed) for g in sorted(members)}

    has_meta = any(s.hops is not None or s.traps for s in samples)
    return SamplingReport(
        n=n,
        ks=ks,
        overall=_group(samples, ks, level, resamples, seed),
        by_source=groups(lambda s: [s.data_source]),
        by_hops=groups(lambda s: [str(s.hops)] if s.hops is not None else []),
        by_trap=groups(lambda s: list(s.traps) or ["none"]) if has_meta else {},
    )
