"""What one arm selects: :class:`SelectionConfig`, and what "correct" means for a selection.

>>> SelectionConfig(strategy="single:adaptive_search", n=10).strategy
'single:adaptive_search'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from searchprime.records import BEHAVIORS, Trajectory

__all__ = ["Correctness", "SelectionConfig", "recorded_correct"]

Correctness = Literal["em", "judge", "em_or_judge"]


class SelectionConfig(BaseModel):
    """How to select one arm's trajectories."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(default="behavior", description="Strategy spec, e.g. 'single:X'.")
    n: int | None = Field(default=None, ge=1, description="Exact number to draw; None = all.")
    seed: int = Field(default=0, description="Seed of the draw (same seed, same sample).")
    behaviors: list[str] = Field(
        default_factory=lambda: list(BEHAVIORS),
        description="The behavior set of the 'behavior' strategies.",
    )
    correctness: Correctness = Field(
        default="em",
        description="What 'correct' means: EM == 1, the judge's verdict, or either.",
    )
    require_answer: bool = Field(
        default=True, description="Drop trajectories that never answered (turn or context limit)."
    )
    dedup: bool = Field(default=True, description="Drop repeats: same task + same actions.")
    stratify: str | None = Field(
        default=None,
        description="A task field with scalar values: 'data_source', a meta key ('hops') or a "
        "dotted meta key ('extra_info.split'). Draws n so that the selection "
        "keeps the usable pool's mix of its values rather than the mix the strategy favours "
        "(correct runs are mostly the easy tasks). Needs the tasks.",
    )

    @field_validator("behaviors")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one behavior is needed")
        return value


def recorded_correct(traj: Trajectory, correctness: Correctness = "em") -> bool:
    """Whether the scores recorded by ``searchprime score`` call the final answer right.

    The verdict of each metric is :func:`searchprime.eval.score.is_correct` (one definition
    of correctness); selection adds only that an unscored trajectory counts as wrong (it
    selects on what ``score`` wrote and never rescores) and the ``em_or_judge`` union.
    """
    from searchprime.eval.score import is_correct

    if traj.scores is None:
        return False
    if correctness == "em_or_judge":
        return is_correct(traj, "em") or is_correct(traj, "judge")
    return is_correct(traj, correctness)
