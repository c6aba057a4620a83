"""Synthetic trajectories shaped like the agent loop's (for data and train tests)."""

from __future__ import annotations

from searchprime.records import (
    BEHAVIORS,
    Action,
    BehaviorEvidence,
    BehaviorLabels,
    Message,
    Scores,
    Trajectory,
    Turn,
)

SYSTEM = "You are a search agent. Use <search>q</search> or <answer>a</answer>."


def make_traj(
    task_id: str = "t1",
    *,
    attempt: int = 0,
    steps: list[tuple[str, str]] | None = None,
    em: float | None = 1.0,
    behaviors: set[str] | None = None,
    labelled: bool = True,
    termination: str = "answer",
    answer: str = "Paris",
) -> Trajectory:
    """Build a trajectory from ``steps`` = [(kind, content)], kind in search/summary/answer/invalid.

    Search turns extend the context by (output, observation); an invalid turn by (output,
    format reminder); a summary replaces the history by one user message.
    """
    steps = steps or [("search", "capital of france"), ("answer", answer)]
    question = f"What is the capital in task {task_id}?"
    messages = [
        Message(role="system", content=SYSTEM),
        Message(role="user", content=f"Question: {question}"),
    ]
    context = [0, 1]
    turns = []
    for i, (kind, content) in enumerate(steps):
        if kind == "invalid":
            output = f"I am not sure {content}"
        else:
            output = f"<think>step {i} of {task_id}</think>\n<{kind}>{content}</{kind}>"
        action = Action(kind=kind, content="" if kind == "invalid" else content)
        messages.append(Message(role="assistant", content=output))
        out_idx = len(messages) - 1
        observation = None
        next_context = list(context)
        if kind == "search":
            observation = (
                f"<information>\nDoc 1 (Title: {content}) [Source: encyclopedia | wiki.example]\n"
                f"{content} is about {answer}.\n</information>"
            )
        elif kind == "invalid":
            observation = "Your response had no valid action. Use exactly one tag."
        elif kind == "summary":
            observation = f"Question: {question}\nSummary so far: {content}"
        if observation is not None:
            messages.append(Message(role="user", content=observation))
            if kind == "summary":
                next_context = [0, len(messages) - 1]
            else:
                next_context = context + [out_idx, len(messages) - 1]
        turns.append(
            Turn(
                index=i,
                context=list(context),
                output=output,
                action=action,
                observation=observation,
            )
        )
        context = next_context
    labels = None
    if labelled:
        present = behaviors if behaviors is not None else set()
        labels = BehaviorLabels(
            annotator="rules:test",
            behaviors={b: BehaviorEvidence(present=b in present) for b in BEHAVIORS},
        )
    return Trajectory(
        task_id=task_id,
        attempt=attempt,
        question=question,
        answers=[answer],
        data_source="sandbox",
        messages=messages,
        turns=turns,
        final_answer=answer if termination == "answer" else None,
        termination=termination,
        scores=Scores(em=em) if em is not None else None,
        labels=labels,
    )


def population() -> list[Trajectory]:
    """40 trajectories: 10 each of (all behaviors | none) x (correct | wrong), varied actions."""
    out = []
    for i in range(40):
        all_b = i % 2 == 0
        correct = (i // 2) % 2 == 0
        steps = [("search", f"query {i}"), ("search", f"query {i} again"), ("answer", "Paris")]
        out.append(
            make_traj(
                f"t{i}",
                steps=steps,
                em=1.0 if correct else 0.0,
                behaviors=set(BEHAVIORS) if all_b else {"adaptive_search"} if i % 3 == 0 else set(),
            )
        )
    return out
