"""Every matplotlib figure of the project: behavior statistics, the report's plots, RL curves.

Each ``*_figure`` function returns a figure, or None when its data is absent; callers save
it (:func:`save`) or embed it (:func:`png_bytes`). matplotlib is the ``plots`` extra and is
imported only when a figure is drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from searchprime._lazy import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from searchprime.behaviors.stats import StatsReport
    from searchprime.report.model import Report, Value

__all__ = [
    "RL_PANELS",
    "accuracy_figure",
    "behavior_rates_figure",
    "behavior_vs_accuracy_figure",
    "entropy_by_turn_figure",
    "pass_at_k_figure",
    "plot_behavior_stats",
    "png_bytes",
    "rates_by_run_figure",
    "report_figures",
    "rl_curves_figure",
    "save",
    "scaling_figure",
    "short_name",
]

_SHORT = {
    "information_verification": "verify",
    "authority_evaluation": "authority",
    "adaptive_search": "adaptive",
    "error_recovery": "recovery",
}


def short_name(behavior: str) -> str:
    """A behavior's short label (``error_recovery`` -> ``recovery``)."""
    return _SHORT.get(behavior, behavior)


def _plt() -> Any:
    matplotlib = require("matplotlib", "plots")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plots")


def save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """``fig`` as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _plt().close(fig)
    return buf.getvalue()


def _grouped_bars(
    ax: Any,
    groups: Sequence[str],
    series: dict[str, list[Value | float | None]],
) -> None:
    """Bars per group, one series per label; CI whiskers where a Value carries one."""
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(groups))]
        means, lo_err, hi_err, any_ci = [], [], [], False
        for v in values:
            mean = v if isinstance(v, float | int) or v is None else v.mean
            means.append(float("nan") if mean is None else mean)
            ci = v is not None and not isinstance(v, float | int) and v.has_ci
            any_ci |= bool(ci)
            lo_err.append(max(0.0, mean - v.lo) if ci else float("nan"))  # nan: no whisker
            hi_err.append(max(0.0, v.hi - mean) if ci else float("nan"))
        yerr = [lo_err, hi_err] if any_ci else None
        ax.bar(xs, [0.0 if math.isnan(m) else m for m in means], width=width, label=label)
        if yerr is not None:
            ax.errorbar(xs, means, yerr=yerr, fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(groups))])
    ax.set_xticklabels(groups, fontsize=8)


# -- behavior statistics (``behaviors stats``) -------------------------------------------------


def rates_by_run_figure(report: StatsReport) -> Figure:
    """Behavior rates (and all four at once) per run."""
    plt = _plt()
    names = report.behaviors + ["all"]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    series: dict[str, list[Value | float | None]] = {
        f"{run.run} (n={run.n})": [run.behaviors[b].rate for b in report.behaviors]
        + [run.all_rate or 0.0]
        for run in report.runs
    }
    _grouped_bars(ax, [n.replace("_", "\n") for n in names], series)
    ax.set_ylabel("share of trajectories")
    ax.set_ylim(0, 1)
    ax.set_title("Behavior rates by run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def behavior_vs_accuracy_figure(report: StatsReport) -> Figure:
    """Per run: each behavior's rate among correct and among incorrect trajectories."""
    plt = _plt()
    names = report.behaviors + ["all"]
    ncols = min(3, len(report.runs))
    nrows = -(-len(report.runs) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.5 * len(names) * ncols + 1, 3.6 * nrows), squeeze=False
    )
    for ax in axes.flat[len(report.runs) :]:
        ax.set_visible(False)
    for ax, run in zip(axes.flat, report.runs, strict=False):
        corr = [run.behaviors[b].rate_correct or 0.0 for b in report.behaviors]
        inc = [run.behaviors[b].rate_incorrect or 0.0 for b in report.behaviors]
        series: dict[str, list[Value | float | None]] = {
            f"correct (n={run.n_correct})": corr + [run.all_rate_correct or 0.0],
            f"incorrect (n={run.n_incorrect})": inc + [run.all_rate_incorrect or 0.0],
        }
        _grouped_bars(ax, [n.replace("_", "\n") for n in names], series)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share showing the behavior")
        ax.set_title(f"{run.run}: behavior vs accuracy")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_behavior_stats(report: StatsReport, out_dir: str | Path) -> list[Path]:
    """Write ``rates_by_run.png`` and ``behavior_vs_accuracy.png``; return their paths."""
    out_dir = Path(out_dir)
    return [
        save(rates_by_run_figure(report), out_dir / "rates_by_run.png"),
        save(behavior_vs_accuracy_figure(report), out_dir / "behavior_vs_accuracy.png"),
    ]


# -- the report --------------------------------------------------------------------------------


def accuracy_figure(report: Report) -> Figure | None:
    """EM and F1 per model, with CI whiskers when known."""
    arms = [a for a in report.arms.values() if a.em is not None]
    if not arms:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(arms) + 2), 3.6))
    _grouped_bars(
        ax, [a.name for a in arms], {"EM": [a.em for a in arms]} | {"F1": [a.f1 for a in arms]}
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ci = any(a.em.has_ci for a in arms)
    ax.set_title("Accuracy by model" + (" (95% CI)" if ci else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def behavior_rates_figure(report: Report) -> Figure | None:
    """Each behavior's rate per model (overall)."""
    arms = [a for a in report.arms.values() if a.behavior]
    if not arms:
        return None
    plt = _plt()
    names = [b for b in report.behaviors if any(b in a.behavior for a in arms)]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.5 * len(names) + 2), 3.6))
    _grouped_bars(
        ax,
        [short_name(b) for b in names],
        {a.name: [a.behavior.get(b) for b in names] for a in arms},
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of trajectories")
    ax.set_title("Behavior rates by model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _line(ax: Any, xs: list[float], values: list[Value], label: str, **kw: Any) -> None:
    ys = [v.mean for v in values]
    (line,) = ax.plot(xs, ys, marker="o", label=label, **kw)
    if all(v.has_ci for v in values):
        ax.fill_between(
            xs, [v.lo for v in values], [v.hi for v in values], alpha=0.15, color=line.get_color()
        )


def pass_at_k_figure(report: Report) -> Figure | None:
    """pass@k against k per model (shaded: 95% CI)."""
    arms = [a for a in report.arms.values() if a.pass_at_k]
    if not arms:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for a in arms:
        ks = sorted(a.pass_at_k)
        _line(ax, ks, [a.pass_at_k[k] for k in ks], a.name)
    if max(max(a.pass_at_k) for a in arms) > 4:
        ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1)
    ax.set_title("pass@k")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scaling_figure(report: Report) -> Figure | None:
    """EM (solid) and pass@k (dashed) against the turn budget per model."""
    arms = [a for a in report.arms.values() if a.scaling]
    if not arms:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for a in arms:
        pts = [p for p in a.scaling if p.em is not None]
        if pts:
            _line(ax, [p.turns for p in pts], [p.em for p in pts], f"{a.name} EM")
        ks = sorted({k for p in a.scaling for k in p.pass_at_k} - {1})
        if ks:
            k = ks[-1]
            pts = [p for p in a.scaling if k in p.pass_at_k]
            _line(
                ax,
                [p.turns for p in pts],
                [p.pass_at_k[k] for p in pts],
                f"{a.name} pass@{k}",
                ls="--",
            )
    ax.set_xlabel("turn budget")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1)
    ax.set_title("Test-time scaling")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def entropy_by_turn_figure(report: Report) -> Figure | None:
    """Mean policy entropy per turn position per model."""
    arms = [a for a in report.arms.values() if a.entropy_by_turn]
    if not arms:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for a in arms:
        ax.plot(range(1, len(a.entropy_by_turn) + 1), a.entropy_by_turn, marker="o", label=a.name)
    ax.set_xlabel("turn")
    ax.set_ylabel("nats / token")
    ax.set_title("Policy entropy by turn")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _entropy(row: dict[str, Any]) -> Any:
    return row.get("entropy", (row.get("trl") or {}).get("entropy"))


def _kl(row: dict[str, Any]) -> Any:
    return row.get("kl", (row.get("trl") or {}).get("kl"))


#: RL step-log panels: (title, value of a row).
RL_PANELS: tuple[tuple[str, Any], ...] = (
    ("reward", lambda r: r.get("reward_mean")),
    ("EM", lambda r: r.get("em")),
    ("zero-variance groups rate", lambda r: r.get("zero_std_groups")),
    ("turns", lambda r: r.get("turns")),
    ("searches", lambda r: r.get("searches")),
    ("entropy (nats/token)", _entropy),
    ("KL", _kl),
    ("valid-action rate", lambda r: r.get("valid_actions")),
    *((f"{short_name(b)} rate", lambda r, b=b: (r.get("behaviors") or {}).get(b)) for b in _SHORT),
)


def rl_curves_figure(steps_by_model: dict[str, list[dict[str, Any]]]) -> Figure | None:
    """One panel per logged quantity (reward, EM, entropy, KL, valid actions, behaviors)."""
    panels = []
    for title, get in RL_PANELS:
        lines = {}
        for model, rows in steps_by_model.items():
            pts = [(r.get("step", i + 1), get(r)) for i, r in enumerate(rows)]
            pts = [(x, float(y)) for x, y in pts if isinstance(y, int | float)]
            if pts:
                lines[model] = pts
        if lines:
            panels.append((title, lines))
    if not panels:
        return None
    plt = _plt()
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, lines) in zip(axes.flat, panels, strict=False):
        for model, pts in lines.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=model)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if title.endswith("rate"):
            ax.set_ylim(-0.02, 1.02)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def report_figures(report: Report) -> list[tuple[str, str, Figure]]:
    """``(id, title, figure)`` of every report plot whose data exists, in page order."""
    makers = (
        ("accuracy", "Accuracy by model", lambda: accuracy_figure(report)),
        ("behaviors", "Behavior rates by model", lambda: behavior_rates_figure(report)),
        ("passk", "pass@k", lambda: pass_at_k_figure(report)),
        ("scaling", "Test-time scaling", lambda: scaling_figure(report)),
        ("entropy", "Policy entropy by turn", lambda: entropy_by_turn_figure(report)),
        ("rl", "RL training curves", lambda: rl_curves_figure(report.rl_steps)),
    )
    out = []
    for key, title, make in makers:
        fig = make()
        if fig is not None:
            out.append((key, title, fig))
    return out
