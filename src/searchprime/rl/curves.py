"""Training curves of an RL run (``steps.jsonl`` -> ``curves.png``), for people and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from searchprime._lazy import require
from searchprime.records import BEHAVIORS

__all__ = ["plot_curves"]

_SHORT = {
    "information_verification": "verify",
    "authority_evaluation": "authority",
    "adaptive_search": "adaptive",
    "error_recovery": "recovery",
}


def plot_curves(steps: list[dict[str, Any]], out: str | Path) -> Path | None:
    """Plot reward/EM, zero-variance groups, turns/searches, entropy and behavior rates per step.

    Returns the PNG path, or None when there are no steps.
    """
    if not steps:
        return None
    matplotlib = require("matplotlib", "plots")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "plots")
    x = [r["step"] for r in steps]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    ax = axes[0]
    ax.plot(x, [r["reward_mean"] for r in steps], label="reward")
    ax.plot(x, [r["em"] for r in steps], label="EM")
    ax.plot(x, [r["zero_std_groups"] for r in steps], label="zero-variance groups", ls="--")
    ax.set_title("reward")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(x, [r["turns"] for r in steps], label="turns")
    ax.plot(x, [r["searches"] for r in steps], label="searches")
    ax.plot(x, [r["valid_actions"] for r in steps], label="valid actions")
    ax.set_title("episodes")
    ax.legend(fontsize=7)
    ax = axes[2]
    entropy = [(r.get("trl") or {}).get("entropy") for r in steps]
    ax.plot(x, [float("nan") if e is None else e for e in entropy])
    ax.set_title("policy entropy (nats/token)")
    ax = axes[3]
    ax.set_title("behavior rates")
    if any(r.get("behaviors") for r in steps):
        for b in BEHAVIORS:
            rates = [(r.get("behaviors") or {}).get(b, float("nan")) for r in steps]
            ax.plot(x, rates, label=_SHORT[b])
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no annotator", ha="center", va="center", transform=ax.transAxes)
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
