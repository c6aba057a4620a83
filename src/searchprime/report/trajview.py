"""What the trajectory viewer shows of one trajectory: question, gold, turns, labels.

Prompts and message history are left out (the turns hold every model output and observation),
which keeps a 5,000-trajectory report small enough to open at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime.eval.metrics import split_golds
from searchprime.eval.score import is_correct, score_one
from searchprime.records import Task, Trajectory

__all__ = ["LabelView", "TrajView", "TurnView", "traj_view"]


class TurnView(BaseModel):
    """One turn: the reasoning, the action and what came back."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="search | summary | answer | invalid")
    think: str | None = Field(default=None, description="<think> text or server reasoning.")
    content: str = Field(default="", description="Query, summary or answer.")
    observation: str | None = Field(default=None, description="What the environment returned.")
    error: str | None = Field(default=None, description="Why an invalid turn was invalid.")
    output: str | None = Field(default=None, description="Raw output, kept for invalid turns.")


class LabelView(BaseModel):
    """One behavior judgement."""

    model_config = ConfigDict(extra="forbid")

    present: bool | None
    turns: list[int] = Field(default_factory=list)
    rationale: str = ""


class TrajView(BaseModel):
    """One trajectory as the viewer shows it."""

    model_config = ConfigDict(extra="forbid")

    model: str
    task_id: str
    attempt: int = 0
    question: str
    answers: list[str] = Field(default_factory=list)
    final_answer: str | None = None
    termination: str
    correct: bool
    em: float | None = None
    f1: float | None = None
    data_source: str | None = None
    hops: int | None = None
    traps: list[str] = Field(default_factory=list)
    annotator: str | None = None
    labels: dict[str, LabelView] = Field(default_factory=dict)
    turns: list[TurnView] = Field(default_factory=list)


def _meta(traj: Trajectory, task: Task | None, key: str) -> Any:
    if task is not None and key in task.meta:
        return task.meta[key]
    return traj.meta.get(key)


def _int(x: Any) -> int | None:
    try:
        return int(x) if x is not None and not isinstance(x, bool) else None
    except (TypeError, ValueError):
        return None


def traj_view(
    traj: Trajectory, model: str, task: Task | None = None, correctness: str = "auto"
) -> TrajView:
    """The viewer's record of ``traj``; hops and traps come from its task when known."""
    scores = traj.scores or score_one(traj, split_golds(traj.answers))
    hops = _meta(traj, task, "hops")
    traps = _meta(traj, task, "traps") or []
    turns = [
        TurnView(
            kind=t.action.kind,
            think=t.action.think if t.action.think is not None else t.reasoning,
            content=t.action.content,
            observation=t.observation,
            error=t.action.error,
            output=t.output if t.action.kind == "invalid" else None,
        )
        for t in traj.turns
    ]
    labels = {}
    if traj.labels is not None:
        labels = {
            name: LabelView(present=ev.present, turns=ev.turns, rationale=ev.rationale)
            for name, ev in traj.labels.behaviors.items()
        }
    return TrajView(
        model=model,
        task_id=traj.task_id,
        attempt=traj.attempt,
        question=traj.question,
        answers=traj.answers,
        final_answer=traj.final_answer,
        termination=traj.termination,
        correct=is_correct(traj, correctness),
        em=scores.em,
        f1=scores.f1,
        data_source=traj.data_source or (task.data_source if task else None),
        hops=_int(hops),
        traps=[str(x) for x in traps] if isinstance(traps, list) else [str(traps)],
        annotator=traj.labels.annotator if traj.labels else None,
        labels=labels,
        turns=turns,
    )
