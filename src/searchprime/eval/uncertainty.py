"""Uncertainty of headline numbers: bootstrap CIs over tasks, paired comparisons, seeds.

* :func:`bootstrap_ci` / :func:`mean_ci`: percentile bootstrap of a mean over tasks (seeded,
  vectorised numpy);
* :func:`paired`: two models on the same tasks — mean difference, paired-bootstrap CI
  (tasks resampled jointly), and McNemar's exact test when the outcomes are binary;
* :func:`mcnemar_exact`: the exact two-sided McNemar p-value from the discordant counts;
* :func:`mean_sd`: mean ± sample standard deviation across training seeds.

>>> mcnemar_exact(gained=9, lost=1)  # 2 * P(X <= 1), X ~ Binomial(10, 1/2) = 22/1024
0.021484375
>>> est = mean_ci([1, 0, 1, 1], resamples=2000, seed=0)
>>> est.mean, est.lo <= est.mean <= est.hi
(0.75, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Estimate",
    "SeedSummary",
    "bootstrap_ci",
    "mcnemar_exact",
    "mean_ci",
    "mean_sd",
    "paired",
]

#: Values times resamples drawn at once (bounds the index matrix to ~32 MB).
_CHUNK_CELLS = 4_000_000


class Estimate(BaseModel):
    """A mean with its bootstrap confidence interval."""

    model_config = ConfigDict(extra="forbid")

    mean: float
    lo: float = Field(description="Lower end of the CI.")
    hi: float = Field(description="Upper end of the CI.")
    n: int = Field(description="Units resampled (tasks).")


class SeedSummary(BaseModel):
    """Mean ± sample standard deviation across seeds."""

    model_config = ConfigDict(extra="forbid")

    mean: float
    sd: float | None = Field(description="Sample sd (ddof=1); None with a single seed.")
    n: int = Field(description="Seeds.")


def _array(values: Sequence[float] | np.ndarray, what: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a flat sequence, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what}: no values")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: holds NaN or infinite values")
    return arr


def _bootstrap_means(arr: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of ``resamples`` resamples (with replacement) of ``arr``."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    n = arr.size
    step = max(1, _CHUNK_CELLS // n)
    out = np.empty(resamples)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = arr[idx].mean(axis=1)
    return out


def _interval(means: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha = (1 - level) / 2
    lo, hi = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (one value per task)."""
    arr = _array(values)
    return _interval(_bootstrap_means(arr, resamples, seed), level)


def mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Estimate:
    """The mean of ``values`` with its percentile bootstrap CI."""
    arr = _array(values)
    lo, hi = bootstrap_ci(arr, level=level, resamples=resamples, seed=seed)
    return Estimate(mean=float(arr.mean()), lo=lo, hi=hi, n=int(arr.size))


def mcnemar_exact(gained: int, lost: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs.

    Under the null each discordant pair is a fair coin: p = min(1, 2 P(X <= min(gained,
    lost))) with X ~ Binomial(gained + lost, 1/2); 1.0 when there is no discordant pair.
    """
    if gained < 0 or lost < 0:
        raise ValueError(f"counts must be >= 0, got gained={gained}, lost={lost}")
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(gained, lost) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers: no overflow or underflow for large n


def _aligned(
    before: Sequence[float] | Mapping[str, float], after: Sequence[float] | Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(before, Mapping) != isinstance(after, Mapping):
        raise ValueError("before and after: give two sequences or two task-id mappings")
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        if set(before) != set(after):
            only_a, only_b = len(set(before) - set(after)), len(set(after) - set(before))
            raise ValueError(
                f"paired comparison needs the same tasks: {only_a} only in before, "
                f"{only_b} only in after"
            )
        keys = sorted(before)
        before, after = [before[k] for k in keys], [after[k] for k in keys]
    a, b = _array(before, "before"), _array(after, "after")  # type: ignore[arg-type]
    if a.size != b.size:
        raise ValueError(f"paired comparison needs equal lengths, got {a.size} and {b.size}")
    return a, b


def paired(
    before: Sequence[float] | Mapping[str, float],
    after: Sequence[float] | Mapping[str, float],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare two models on the same tasks (``after`` - ``before``).

    ``before``/``after``: per-task values in the same order, or ``{task_id: value}`` mappings
    with the same keys. Returns ``{"delta", "ci95": [lo, hi], "gained", "lost", "mcnemar_p",
    "n"}``: the mean difference, its paired-bootstrap CI (``ci95`` holds the ``level``
    interval), the tasks that went 0 -> 1 and 1 -> 0, and McNemar's exact p (None when the
    values are not all 0/1).
    """
    a, b = _aligned(before, after)
    diff = b - a
    lo, hi = _interval(_bootstrap_means(diff, resamples, seed), level)
    gained = int(((a == 0) & (b == 1)).sum())
    lost = int(((a == 1) & (b == 0)).sum())
    binary = bool(np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all())
    return {
        "delta": float(diff.mean()),
        "ci95": [lo, hi],
        "gained": gained,
        "lost": lost,
        "mcnemar_p": mcnemar_exact(gained, lost) if binary else None,
        "n": int(a.size),
    }


def mean_sd(values: Sequence[float] | np.ndarray) -> SeedSummary:
    """Mean ± sample sd (ddof=1) of one number across seeds."""
    arr = _array(values)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else None
    return SeedSummary(mean=float(arr.mean()), sd=sd, n=int(arr.size))
