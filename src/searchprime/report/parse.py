"""Read the numbers of a ``report.json`` arm into an :class:`ArmSummary`.

``report.json`` is written by ``experiment``; its optional numbers may come in the shapes the
``eval`` modules produce, and each is read when present:

* a plain number, or an estimate ``{"mean", "lo"?, "hi"?, "n"?, "sd"?}``
  (:class:`~searchprime.eval.uncertainty.Estimate`, ``SeedSummary``);
* ``ci95: {metric: [lo, hi]}`` beside plain numbers (``em``, ``f1``, ``turns``, ``searches``,
  ``valid_turns``, ``answered``, ``entropy``, ``pass@k``, ``avg@k``, ``maj@k``, a behavior);
* ``seeds: {metric: {"mean", "sd", "n"}}``: mean ± sd across training seeds;
* ``pass_at_k`` / ``avg_at_k`` / ``maj_at_k``: ``{k: number | estimate}``, or ``sampling``: a
  :class:`~searchprime.eval.passk.SamplingReport` (its ``overall.metrics["pass@k"]``);
* ``entropy``: a number, an estimate, or an :class:`~searchprime.eval.entropy.EntropyReport`
  (``overall.mean``; ``by_turn`` gives the per-turn curve);
* ``scaling``: a list of :class:`~searchprime.eval.scaling.ScalingPoint` (``budget``,
  ``accuracy``, ``pass_at``) or ``{"turns", "em", "pass_at_k"}`` rows;
* report level ``comparisons``: a list of ``paired()`` results with ``metric`` and the two
  models as ``against`` and ``model`` (or ``a`` and ``b``); the delta is model minus against.
"""

from __future__ import annotations

import math
from typing import Any

from searchprime.report.model import (
    ArmSummary,
    ClaimResult,
    Comparison,
    ScalingPoint,
    StageRun,
    Value,
)

__all__ = ["parse_arm", "parse_claims", "parse_comparisons", "parse_stages", "parse_value"]

_PLAIN = ("em", "f1", "valid_turns", "answered", "turns", "searches")


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _pair(ci: Any) -> tuple[float | None, float | None]:
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return _num(ci[0]), _num(ci[1])
    if isinstance(ci, dict):
        return _num(ci.get("lo")), _num(ci.get("hi"))
    return None, None


def parse_value(raw: Any, ci: Any = None, seeds: Any = None) -> Value | None:
    """A number or estimate (plus an optional ``[lo, hi]`` and seed summary) as a Value."""
    if isinstance(raw, dict):
        if "overall" in raw and isinstance(raw["overall"], dict):  # an EntropyReport
            return parse_value(raw["overall"], ci, seeds)
        mean = _num(raw.get("mean"))
        lo, hi = _num(raw.get("lo")), _num(raw.get("hi"))
        if lo is None and "ci95" in raw:
            lo, hi = _pair(raw["ci95"])
        sd, n = _num(raw.get("sd")), raw.get("n")
    else:
        mean, lo, hi, sd, n = _num(raw), None, None, None, None
    if mean is None:
        return None
    if lo is None and ci is not None:
        lo, hi = _pair(ci)
    if isinstance(seeds, dict):
        sd = sd if sd is not None else _num(seeds.get("sd"))
    return Value(mean=mean, lo=lo, hi=hi, sd=sd, n=n if isinstance(n, int) else None)


def _at_k(raw: Any, ci: dict[str, Any], seeds: dict[str, Any], prefix: str) -> dict[int, Value]:
    out: dict[int, Value] = {}
    if not isinstance(raw, dict):
        return out
    if isinstance(raw.get("overall"), dict):
        raw = raw["overall"]
    for key, val in raw.items():
        try:
            k = int(key)
        except (TypeError, ValueError):
            continue
        name = f"{prefix}@{k}"
        v = parse_value(val, ci.get(name), seeds.get(name))
        if v is not None:
            out[k] = v
    return dict(sorted(out.items()))


def _sampling_metrics(raw: Any, prefix: str) -> dict[int, Value]:
    """``{k: Value}`` of ``prefix@k`` from a SamplingReport dump."""
    metrics = (raw or {}).get("overall", {}).get("metrics", {}) if isinstance(raw, dict) else {}
    out = {}
    for name, est in metrics.items():
        head, _, k = name.partition("@")
        if head == prefix and k.isdigit() and (v := parse_value(est)) is not None:
            out[int(k)] = v
    return dict(sorted(out.items()))


def _scaling(raw: Any) -> list[ScalingPoint]:
    rows = raw
    if isinstance(raw, dict):
        rows = [{"turns": k, **v} for k, v in raw.items() if isinstance(v, dict)]
    points = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        turns = row.get("budget", row.get("turns"))
        try:
            turns = int(turns)
        except (TypeError, ValueError):
            continue
        em = parse_value(row.get("accuracy", row.get("em")))
        pak = row.get("pass_at", row.get("pass_at_k")) or {}
        points.append(
            ScalingPoint(
                turns=turns,
                em=em,
                pass_at_k={
                    int(k): v
                    for k, val in pak.items()
                    if str(k).isdigit() and (v := parse_value(val)) is not None
                },
            )
        )
    return sorted(points, key=lambda p: p.turns)


def _by_turn(raw: Any) -> list[float]:
    by_turn = raw.get("by_turn") if isinstance(raw, dict) else None
    if not isinstance(by_turn, dict):
        return []
    items = sorted((int(k), parse_value(v)) for k, v in by_turn.items() if str(k).isdigit())
    return [v.mean if v is not None else float("nan") for _, v in items]


def parse_arm(name: str, raw: dict[str, Any]) -> ArmSummary:
    """One ``report.json`` arm; unknown keys are ignored, missing numbers stay empty."""
    ci = raw.get("ci95") if isinstance(raw.get("ci95"), dict) else {}
    seeds = raw.get("seeds") if isinstance(raw.get("seeds"), dict) else {}
    plain = {k: parse_value(raw.get(k), ci.get(k), seeds.get(k)) for k in _PLAIN}
    at = {
        p: _at_k(raw.get(f"{p}_at_k"), ci, seeds, p) or _sampling_metrics(raw.get("sampling"), p)
        for p in ("pass", "avg", "maj")
    }
    behavior = {
        b: v
        for b, x in (raw.get("behavior") or {}).items()
        if (v := parse_value(x, ci.get(b))) is not None
    }
    offered = {b: parse_value(x) for b, x in (raw.get("behavior_offered") or {}).items()}
    rl = raw.get("rl") if isinstance(raw.get("rl"), dict) else None
    g = raw.get("grounded") if isinstance(raw.get("grounded"), dict) else {}
    gci = g.get("ci95") if isinstance(g.get("ci95"), dict) else {}
    grounded = {
        b: v
        for b, x in (g.get("behavior") or {}).items()
        if (v := parse_value(x, gci.get(b))) is not None
    }
    agreement = raw.get("agreement") if isinstance(raw.get("agreement"), dict) else {}
    return ArmSummary(
        name=name,
        n=int(raw.get("n") or 0),
        **plain,
        pass_at_k=at["pass"],
        avg_at_k=at["avg"],
        maj_at_k=at["maj"],
        entropy=parse_value(raw.get("entropy"), ci.get("entropy"), seeds.get("entropy")),
        entropy_by_turn=_by_turn(raw.get("entropy")),
        scaling=_scaling(raw.get("scaling")),
        behavior=behavior,
        behavior_offered=offered,
        offered_n={b: int(x) for b, x in (raw.get("offered_n") or {}).items()},
        grounded=grounded,
        grounded_offered={b: parse_value(x) for b, x in (g.get("behavior_offered") or {}).items()},
        agreement={b: a for b, a in agreement.items() if isinstance(a, dict)},
        failures=_counts(raw.get("failures")),
        repeated_searches=_fraction(raw.get("repeated_searches")),
        rl=rl,
        degenerate=raw.get("degenerate") if isinstance(raw.get("degenerate"), str) else None,
        weights=_weights(raw.get("weights")),
    )


def _weights(raw: Any) -> dict[str, str]:
    """Kind -> weights id; anything else (or an id that is not a short string) left out."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str) and len(v) <= 64}


def _counts(raw: Any) -> dict[str, int]:
    """A name -> count mapping; entries that are not non-negative integers are left out."""
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): v
        for k, v in raw.items()
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0
    }


def _fraction(raw: Any) -> float | None:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and 0 <= raw <= 1:
        return float(raw)
    return None


def parse_comparisons(raw: Any) -> list[Comparison]:
    """Report-level paired comparisons (a list, or a mapping of name -> result)."""
    rows = list(raw.values()) if isinstance(raw, dict) else raw
    out = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or _num(row.get("delta")) is None:
            continue
        lo, hi = _pair(row.get("ci95"))
        out.append(
            Comparison(  # ``model`` compared ``against`` its parent, as experiment writes it
                a=str(row.get("against", row.get("a", "?"))),
                b=str(row.get("model", row.get("b", "?"))),
                metric=str(row.get("metric", "em")),
                delta=float(row["delta"]),
                lo=lo,
                hi=hi,
                gained=row.get("gained"),
                lost=row.get("lost"),
                p_value=_num(row.get("mcnemar_p", row.get("p_value"))),
                n=row.get("n"),
            )
        )
    return out


def parse_claims(raw: Any) -> list[ClaimResult]:
    """Report-level claims (experiment's ``claims``); rows without a verdict are skipped."""
    out = []
    for row in raw if isinstance(raw, list) else []:
        if not isinstance(row, dict) or _num(row.get("delta")) is None or not row.get("verdict"):
            continue
        lo, hi = _pair(row.get("ci95"))
        out.append(
            ClaimResult(
                statement=str(row.get("statement", row.get("claim", "?"))),
                model=str(row.get("model", "?")),
                against=str(row.get("against", "?")),
                delta=float(row["delta"]),
                lo=lo,
                hi=hi,
                p_value=_num(row.get("mcnemar_p")),
                ratio=_num(row.get("ratio")),
                verdict=str(row["verdict"]),
                n=row.get("n") if isinstance(row.get("n"), int) else None,
            )
        )
    return out


def _strings(row: dict[str, Any], key: str) -> list[str]:
    vals = row.get(key)
    return [v for v in vals if isinstance(v, str)] if isinstance(vals, list) else []


def _text(row: dict[str, Any], key: str) -> str | None:
    return row[key] if isinstance(row.get(key), str) else None


def _int(row: dict[str, Any], key: str) -> int:
    value = row.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_stages(raw: Any) -> list[StageRun]:
    """The study's stage ledger (``stages``); rows without a stage name are skipped, fields of
    the wrong type dropped."""
    out = []
    for row in raw if isinstance(raw, list) else []:
        if not isinstance(row, dict) or not isinstance(row.get("stage"), str):
            continue
        out.append(
            StageRun(
                stage=row["stage"],
                done=row.get("done") is True,
                seconds=_num(row.get("seconds")) or 0.0,
                passes=_int(row, "passes"),
                revisits=_int(row, "revisits"),
                hosts=_strings(row, "hosts"),
                cpu_models=_strings(row, "cpu_models"),
                commits=_strings(row, "commits"),
                first_start=_text(row, "first_start"),
                last_end=_text(row, "last_end"),
            )
        )
    return out
