"""The paper's claims as paired comparisons between the study's arms, each with a verdict.

The arms are found by what they are, not by their names: *direct RL* is the plain RL run from
``base``; *X -> RL* the plain run from the SFT arm whose selection strategy is X (``behavior``,
``behavior-incorrect``, ``correct``, ``random``); *prompted RL* a run from ``base`` with another
prompt; *bonus RL* a run from ``base`` whose rewards include ``behavior``. A claim whose two arms
are not both in the study is left out.

Each claim compares EM over the same dev tasks (:func:`~searchprime.eval.uncertainty.paired`:
mean difference, paired-bootstrap CI, McNemar's exact p) and says ``confirmed`` when the CI lies
on the claimed side of 0, ``reversed`` when it lies on the other, else ``not confirmed``. The
claim that the incorrect-answer arm does *about as well* is ``confirmed`` when the CI holds 0 (no
difference found: not a proof of equivalence). The headline carries the ratio of the two EMs
with its paired-bootstrap CI (the paper reports +37% relative, i.e. 1.37x).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from searchprime.experiment.config import ExperimentConfig, RLRun

__all__ = ["CLAIMS", "claim_pairs", "claims", "ratio_ci"]

#: (key, model role, against role, kind, statement); kind 'better' or 'same'.
CLAIMS: tuple[tuple[str, str, str, Literal["better", "same"], str], ...] = (
    ("priming_vs_direct", "behavior", "direct", "better", "behavior->RL beats direct RL"),
    ("priming_vs_correct", "behavior", "correct", "better", "behavior->RL beats correct->RL"),
    ("priming_vs_random", "behavior", "random", "better", "behavior->RL beats random->RL"),
    (
        "incorrect_vs_priming",
        "behavior-incorrect",
        "behavior",
        "same",
        "behavior-incorrect->RL does about as well as behavior->RL",
    ),
    ("priming_vs_prompted", "behavior", "prompted", "better", "behavior->RL beats prompted RL"),
    ("priming_vs_bonus", "behavior", "bonus", "better", "behavior->RL beats RL with a bonus"),
)


def _plain(run: RLRun) -> bool:
    return run.prompt is None and run.rewards is None


def roles(cfg: ExperimentConfig) -> dict[str, str]:
    """Role -> model name of the RL runs that play it (the first run of each role)."""
    if cfg.rl is None:
        return {}
    strategy = {a.name: a.strategy for a in cfg.arms}
    out: dict[str, str] = {}
    for run in cfg.rl.plan():
        if run.start_from == "base":
            if _plain(run):
                role = "direct"
            elif run.rewards is not None and "behavior" in run.rewards:
                role = "bonus"
            elif run.prompt is not None:
                role = "prompted"
            else:
                continue
        elif _plain(run):
            role = strategy[run.start_from]
        else:
            continue
        out.setdefault(role, run.name)
    return out


def claim_pairs(cfg: ExperimentConfig) -> list[tuple[str, str, str]]:
    """``(claim key, model, against)`` of every claim whose two arms the study has."""
    r = roles(cfg)
    return [(key, r[a], r[b]) for key, a, b, _, _ in CLAIMS if a in r and b in r]


def ratio_ci(
    before: list[float], after: list[float], *, resamples: int, seed: int
) -> tuple[float | None, list[float | None]]:
    """``mean(after) / mean(before)`` and its paired-bootstrap 95% CI over the same tasks
    (resamples whose ``before`` mean is 0 are left out; None when it is 0 itself)."""
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.size == 0 or a.mean() == 0:
        return None, [None, None]
    idx = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    den, num = a[idx].mean(axis=1), b[idx].mean(axis=1)
    ok = den > 0
    ratios = num[ok] / den[ok]
    lo, hi = (float(x) for x in np.percentile(ratios, [2.5, 97.5]))
    return float(b.mean() / a.mean()), [lo, hi]


def _verdict(kind: str, lo: float, hi: float) -> str:
    if kind == "same":
        return "confirmed" if lo <= 0 <= hi else "not confirmed"
    if lo > 0:
        return "confirmed"
    return "reversed" if hi < 0 else "not confirmed"


def _exploration(row: dict[str, Any]) -> dict[str, Any]:
    passk = row.get("pass_at_k") or {}
    k = max((int(x) for x in passk), default=None)
    return {
        "em": row.get("em"),
        "entropy": (row.get("entropy") or {}).get("mean"),
        "turns": row.get("turns"),
        "searches": row.get("searches"),
        **({f"pass@{k}": passk[str(k)]["mean"]} if k is not None else {}),
    }


def claims(
    cfg: ExperimentConfig, per_task: dict[str, list[float]], arms: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each claim of :data:`CLAIMS` the study can test, measured (``arms``: report rows)."""
    from searchprime.eval.uncertainty import paired

    kinds = {key: (kind, text) for key, _, _, kind, text in CLAIMS}
    out = []
    for key, model, against in claim_pairs(cfg):
        if model not in per_task or against not in per_task:
            continue
        kind, text = kinds[key]
        test = paired(
            per_task[against], per_task[model], resamples=cfg.eval.resamples, seed=cfg.seed
        )
        ratio, ratio_ci95 = ratio_ci(
            per_task[against], per_task[model], resamples=cfg.eval.resamples, seed=cfg.seed
        )
        out.append(
            {
                "claim": key,
                "statement": text,
                "model": model,
                "against": against,
                "metric": "em",
                **test,
                "ratio": ratio,
                "ratio_ci95": ratio_ci95,
                "verdict": _verdict(kind, *test["ci95"]),
                "exploration": {m: _exploration(arms.get(m, {})) for m in (model, against)},
            }
        )
    return out
