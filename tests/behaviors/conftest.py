"""Fixtures for behavior tests: trajectory factories and a real SmolLM2 server."""

from __future__ import annotations

import pytest

from searchprime.records import (
    Action,
    BehaviorEvidence,
    BehaviorLabels,
    Trajectory,
    Turn,
)


def make_traj(
    task_id: str,
    *,
    correct: bool = True,
    shown: set[str] | frozenset[str] = frozenset(),
    truth: set[str] | None = None,
    attempt: int = 0,
    unknown: set[str] | frozenset[str] = frozenset(),
    behaviors: tuple[str, ...] | None = None,
    labelled: bool = True,
    n_turns: int = 2,
    observation: str = "Doc 1 (Title: X) [Source: encyclopedia | wiki.example]\nX was born in Y.",
) -> Trajectory:
    """A small trajectory with gold 'Paris'; ``shown`` -> labels, ``truth`` -> teacher log."""
    from searchprime.records import BEHAVIORS

    names = behaviors or BEHAVIORS
    turns = []
    for i in range(n_turns - 1):
        meta = {"behaviors": sorted(truth)} if truth is not None and i == 0 else {}
        if truth is not None and i > 0:
            meta = {"behaviors": []}
        turns.append(
            Turn(
                index=i,
                context=[0],
                output=f"<think>step {i}</think><search>query {i}</search>",
                action=Action(kind="search", content=f"query {i}"),
                observation=f"<information>\n{observation}\n</information>",
                policy_meta=meta,
            )
        )
    answer = "Paris" if correct else "Lyon"
    turns.append(
        Turn(
            index=n_turns - 1,
            context=[0],
            output=f"<answer>{answer}</answer>",
            action=Action(kind="answer", content=answer),
            policy_meta={"behaviors": []} if truth is not None else {},
        )
    )
    labels = None
    if labelled:
        labels = BehaviorLabels(
            annotator="test",
            behaviors={
                n: BehaviorEvidence(present=None if n in unknown else n in shown) for n in names
            },
        )
    return Trajectory(
        task_id=task_id,
        attempt=attempt,
        question="What is the capital of France?",
        answers=["Paris"],
        turns=turns,
        final_answer=answer,
        termination="answer",
        labels=labels,
    )


@pytest.fixture
def traj_factory():
    return make_traj
