"""Training curves of an RL run (``steps.jsonl`` -> ``curves.png``), for people and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_curves"]


def plot_curves(steps: list[dict[str, Any]], out: str | Path) -> Path | None:
    """Plot one RL run's per-step curves (the report's panels); None when there are no steps."""
    from searchprime.report.plots import rl_curves_figure, save

    fig = rl_curves_figure({"run": steps}) if steps else None
    return None if fig is None else save(fig, out)
