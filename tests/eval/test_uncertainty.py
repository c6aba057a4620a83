"""Bootstrap CIs on known distributions, paired comparisons, McNemar against hand-made tails."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from searchprime.eval.uncertainty import (
    bootstrap_ci,
    mcnemar_exact,
    mean_ci,
    mean_sd,
    paired,
)


def coverage(draw, truth: float, repeats: int = 300, resamples: int = 1000) -> float:
    rng = np.random.default_rng(123)
    hits = 0
    for r in range(repeats):
        lo, hi = bootstrap_ci(draw(rng), resamples=resamples, seed=r)
        hits += lo <= truth <= hi
    return hits / repeats


def test_ci_of_bernoulli_mean_covers_about_95_percent():
    got = coverage(lambda rng: rng.random(100) < 0.3, 0.3)
    # percentile bootstrap at n=100 runs a little under nominal; 300 repeats: sd ~1.3 points
    assert 0.90 <= got <= 0.985


def test_ci_of_normal_mean_covers_about_95_percent_and_90_percent_is_narrower():
    got = coverage(lambda rng: rng.normal(5.0, 2.0, size=50), 5.0)
    assert 0.90 <= got <= 0.985
    x = np.random.default_rng(0).normal(0, 1, size=200)
    lo95, hi95 = bootstrap_ci(x, seed=1)
    lo90, hi90 = bootstrap_ci(x, level=0.90, seed=1)
    assert lo95 < lo90 < hi90 < hi95
    # the width follows the standard error: 2 * 1.96 * sd / sqrt(n)
    assert hi95 - lo95 == pytest.approx(2 * 1.96 * x.std() / np.sqrt(200), rel=0.1)


def test_bootstrap_is_seeded_and_chunking_does_not_matter(monkeypatch):
    import searchprime.eval.uncertainty as unc

    x = np.random.default_rng(0).random(1000)  # 10000 x 1000 cells: three chunks
    chunked = bootstrap_ci(x, seed=7)
    monkeypatch.setattr(unc, "_CHUNK_CELLS", 10**9)  # one chunk
    assert bootstrap_ci(x, seed=7) == pytest.approx(chunked, abs=1e-12)
    monkeypatch.undo()
    assert bootstrap_ci(x, seed=7) == chunked
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)
    est = mean_ci(x, seed=7)
    assert est.mean == pytest.approx(x.mean()) and est.n == 1000
    assert est.lo < est.mean < est.hi


def test_degenerate_and_bad_inputs():
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    for bad in ([], [1.0, float("nan")], [[1.0, 2.0]]):
        with pytest.raises(ValueError):
            bootstrap_ci(bad)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], level=1.5)


def binom_tail(n: int, upto: int) -> Fraction:
    return Fraction(sum(comb(n, i) for i in range(upto + 1)), 2**n)


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    # 9 vs 1: 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    assert mcnemar_exact(9, 1) == 22 / 1024
    assert mcnemar_exact(1, 9) == 22 / 1024
    # 6 vs 2: 2 * (1 + 8 + 28) / 256
    assert mcnemar_exact(6, 2) == 74 / 256
    assert mcnemar_exact(0, 5) == 2 / 32
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # large counts: exact integers, no underflow
    assert mcnemar_exact(600, 400) == pytest.approx(float(2 * binom_tail(1000, 400)), rel=1e-12)
    assert 0 < mcnemar_exact(600, 400) < 1e-9
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_paired_keeps_the_bench_shape_and_counts_discordant_tasks():
    before = [0, 0, 1, 1, 0, 1, 0, 0, 1, 0] * 4
    after = [1, 1, 1, 0, 1, 1, 1, 0, 1, 1] * 4
    out = paired(before, after, resamples=2000)
    assert set(out) == {"delta", "ci95", "gained", "lost", "mcnemar_p", "n"}
    assert out["delta"] == pytest.approx(np.mean(after) - np.mean(before))
    assert (out["gained"], out["lost"], out["n"]) == (20, 4, 40)
    assert out["mcnemar_p"] == pytest.approx(float(2 * binom_tail(24, 4)))
    lo, hi = out["ci95"]
    assert 0 < lo < out["delta"] < hi


def test_paired_bootstrap_is_narrower_than_unpaired_for_correlated_models():
    rng = np.random.default_rng(0)
    skill = rng.random(300)
    a = (skill > 0.5).astype(float)
    b = a.copy()
    b[rng.choice(300, 15, replace=False)] = 1.0  # b = a plus a few gains
    lo, hi = paired(a, b, resamples=4000)["ci95"]
    ua, ub = bootstrap_ci(a, seed=1), bootstrap_ci(b, seed=2)
    assert hi - lo < 0.5 * ((ua[1] - ua[0]) + (ub[1] - ub[0])) / 2
    assert lo >= 0.0  # resampled differences are never negative: b >= a on every task


def test_paired_aligns_mappings_by_task_and_handles_non_binary_values():
    out = paired({"t1": 0.0, "t2": 1.0}, {"t2": 1.0, "t1": 1.0}, resamples=200)
    assert (out["delta"], out["gained"], out["lost"]) == (0.5, 1, 0)
    with pytest.raises(ValueError, match="same tasks"):
        paired({"t1": 0.0}, {"t2": 1.0})
    with pytest.raises(ValueError):
        paired([0.0, 1.0], [1.0])
    f1 = paired([0.2, 0.5], [0.4, 0.5], resamples=200)
    assert f1["mcnemar_p"] is None and f1["delta"] == pytest.approx(0.1)


def test_mean_sd_across_seeds():
    s = mean_sd([0.40, 0.44, 0.48])
    assert (s.mean, s.n) == (pytest.approx(0.44), 3)
    assert s.sd == pytest.approx(0.04)
    one = mean_sd([0.5])
    assert one.sd is None and one.mean == 0.5
