"""The selection card: what was selected and why, written beside every exported dataset."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime.data.config import SelectionConfig, recorded_correct
from searchprime.records import BEHAVIORS, Trajectory

__all__ = ["SelectionCard", "make_card"]


class SelectionCard(BaseModel):
    """What was selected and why: written beside every exported dataset."""

    model_config = ConfigDict(extra="forbid")

    strategy: str
    description: str
    config: SelectionConfig
    counts: dict[str, int] = Field(description="Funnel: read -> usable -> matched -> selected.")
    selected_tasks: int
    correct_rate: float | None = Field(description="Fraction correct among the selected.")
    behavior_rates: dict[str, float] = Field(description="Fraction showing each behavior.")
    annotators: list[str] = Field(description="Who labelled the selected trajectories.")
    mean_turns: float
    mean_searches: float
    keys: list[tuple[str, int]] = Field(description="(task id, attempt) of each selected one.")
    strata: dict[str, dict[str, int]] | None = Field(
        default=None, description="With stratify: per value, usable pool and selected counts."
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Set by exporters.")

    def summary_lines(self) -> list[str]:
        """A short human-readable rendering of the card."""
        c = self.counts
        funnel = " -> ".join(f"{k} {v}" for k, v in c.items())
        rates = ", ".join(f"{k} {v:.0%}" for k, v in self.behavior_rates.items())
        correct = "n/a" if self.correct_rate is None else f"{self.correct_rate:.0%}"
        lines = [
            f"strategy {self.strategy} ({self.description}), seed {self.config.seed}",
            f"funnel: {funnel}",
            f"selected {c.get('selected', 0)} trajectories over {self.selected_tasks} tasks; "
            f"correct {correct}; turns {self.mean_turns:.1f}, searches {self.mean_searches:.1f}",
            f"behaviors: {rates or 'no labels'}",
        ]
        if self.strata:
            mix = ", ".join(f"{k}: {v['selected']}/{v['pool']}" for k, v in self.strata.items())
            lines.append(f"stratified by {self.config.stratify} (selected/pool): {mix}")
        lines += [f"{k}: {v}" for k, v in self.extra.items()]
        return lines


def make_card(
    description: str, config: SelectionConfig, counts: dict[str, int], chosen: list[Trajectory]
) -> SelectionCard:
    """The card of ``chosen``, drawn with ``config`` through the funnel ``counts``."""
    n = len(chosen) or 1
    scored = [t for t in chosen if t.scores is not None]
    labelled = [t for t in chosen if t.labels is not None]
    rates = {}
    if labelled:
        names = list(BEHAVIORS) + sorted(
            {k for t in labelled for k in t.labels.behaviors if k not in BEHAVIORS}
        )
        rates = {b: sum(t.labels.has(b) for t in labelled) / len(labelled) for b in names}
    correct = [recorded_correct(t, config.correctness) for t in scored]
    return SelectionCard(
        strategy=config.strategy,
        description=description,
        config=config,
        counts=counts,
        selected_tasks=len({t.task_id for t in chosen}),
        correct_rate=sum(correct) / len(scored) if scored else None,
        behavior_rates=rates,
        annotators=sorted({t.labels.annotator for t in labelled}),
        mean_turns=sum(len(t.turns) for t in chosen) / n,
        mean_searches=sum(t.n_searches for t in chosen) / n,
        keys=[t.key for t in chosen],
    )
