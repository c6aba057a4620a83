"""Turn trajectories into SFT samples: a prompt (context, never trained) and a completion.

Two shapes:

``turn`` (the study's shape)
    One sample per valid turn: the prompt is exactly what the model saw
    (``Turn.context`` indices into ``Trajectory.messages``), the completion is that turn's
    output as one assistant message. After a summary the context is the summary, not the old
    history, and the sample says so: nothing is reconstructed.

``trajectory``
    One sample per *segment*: a run of turns whose contexts extend each other (each turn's
    context = the previous one + its output + the observation). The prompt is the first
    turn's context; the completion alternates the policy's outputs (assistant, trained) and
    the observations (user, never trained). A summary (the history is replaced) or an invalid
    turn starts a new segment. Exporters for trainers that would train the observations under
    their defaults (TRL) write each segment as :func:`per_turn` rows: every row's completion is
    exactly one assistant turn, its prompt the segment up to that turn.

Invalid-format turns (``action.kind == "invalid"``) are never trained: they are skipped in
``turn`` shape and end the segment in ``trajectory`` shape. They still appear inside later
prompts, because the model really saw them (and the format reminder that followed). Server-side
reasoning (``Turn.reasoning``) is not part of the completion: only the content is trained.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from searchprime.errors import RecordError
from searchprime.records import Message, Trajectory, Turn

__all__ = [
    "SHAPES",
    "Sample",
    "Shape",
    "build_samples",
    "per_turn",
    "trajectory_samples",
    "turn_samples",
]

Shape = Literal["turn", "trajectory"]
SHAPES: tuple[str, ...] = ("turn", "trajectory")


class Sample(BaseModel):
    """One SFT example: ``prompt`` is context only; assistant messages of ``completion`` train."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="'<task>#<attempt>#t<turn>', '<task>#<attempt>#s<segment>', or "
        "'<task>#<attempt>#s<segment>t<turn>' for one turn of a segment (:func:`per_turn`)."
    )
    task_id: str
    attempt: int
    turns: list[int] = Field(description="Indices of the turns whose outputs are trained.")
    prompt: list[Message] = Field(description="The model input; never carries a label.")
    completion: list[Message] = Field(description="Assistant outputs (+ observations between).")


def _where(traj: Trajectory) -> str:
    return f"trajectory {traj.task_id}#{traj.attempt}"


def _context(traj: Trajectory, turn: Turn) -> list[Message]:
    n = len(traj.messages)
    if not turn.context:
        raise RecordError(_where(traj), None, f"turns[{turn.index}].context", "is empty")
    for i in turn.context:
        if not 0 <= i < n:
            raise RecordError(
                _where(traj),
                None,
                f"turns[{turn.index}].context",
                f"index {i} out of range ({n} messages)",
            )
    return [traj.messages[i] for i in turn.context]


def turn_samples(traj: Trajectory) -> list[Sample]:
    """One sample per valid turn: context -> that turn's output."""
    out = []
    for turn in traj.turns:
        if turn.action.kind == "invalid":
            continue
        out.append(
            Sample(
                id=f"{traj.task_id}#{traj.attempt}#t{turn.index}",
                task_id=traj.task_id,
                attempt=traj.attempt,
                turns=[turn.index],
                prompt=_context(traj, turn),
                completion=[Message(role="assistant", content=turn.output)],
            )
        )
    return out


def _observation_after(traj: Trajectory, prev: Turn, turn: Turn) -> list[Message] | None:
    """The user messages between ``prev``'s output and ``turn``, or None if not a continuation."""
    k = len(prev.context)
    if turn.context[:k] != prev.context:
        return None
    extra = turn.context[k:]
    if len(extra) < 2 or any(not 0 <= i < len(traj.messages) for i in extra):
        return None
    if traj.messages[extra[0]].role != "assistant":
        return None
    rest = [traj.messages[i] for i in extra[1:]]
    if any(m.role == "assistant" for m in rest):
        return None
    return rest


def trajectory_samples(traj: Trajectory, *, include_invalid: bool = False) -> list[Sample]:
    """One sample per chained segment of valid turns, observations between the outputs.

    ``include_invalid`` keeps invalid-format turns in their segment (for measuring what the
    policy generated, e.g. its entropy, rather than what to train).
    """
    segments: list[Sample] = []
    current: Sample | None = None
    prev: Turn | None = None
    for turn in traj.turns:
        if turn.action.kind == "invalid" and not include_invalid:
            current, prev = None, None
            continue
        obs = _observation_after(traj, prev, turn) if current is not None and prev else None
        if current is not None and obs is not None:
            current.completion.extend(obs)
            current.completion.append(Message(role="assistant", content=turn.output))
            current.turns.append(turn.index)
        else:
            current = Sample(
                id=f"{traj.task_id}#{traj.attempt}#s{len(segments)}",
                task_id=traj.task_id,
                attempt=traj.attempt,
                turns=[turn.index],
                prompt=_context(traj, turn),
                completion=[Message(role="assistant", content=turn.output)],
            )
            segments.append(current)
        prev = turn
    return segments


def per_turn(sample: Sample) -> list[Sample]:
    """``sample`` as one sample per assistant message of its completion.

    Row ``k``'s prompt is the sample's prompt plus the completion before that message
    (earlier outputs and observations become context); its completion is that one message;
    its id is the sample's plus ``t<turn>``.
    """
    out: list[Sample] = []
    turns = iter(sample.turns)
    for k, msg in enumerate(sample.completion):
        if msg.role != "assistant":
            continue
        turn = next(turns)
        out.append(
            Sample(
                id=f"{sample.id}t{turn}",
                task_id=sample.task_id,
                attempt=sample.attempt,
                turns=[turn],
                prompt=sample.prompt + sample.completion[:k],
                completion=[msg],
            )
        )
    return out


def build_samples(trajs: Iterable[Trajectory], shape: Shape = "turn") -> list[Sample]:
    """All samples of ``trajs`` in the given shape, in input order."""
    if shape == "turn":
        make = turn_samples
    elif shape == "trajectory":
        make = trajectory_samples
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return [s for t in trajs for s in make(t)]
