"""A synthetic ``experiment`` run folder for report tests and ``bench/report.py``.

Written through the project's own records and writers: tasks and labelled trajectories with
``write_jsonl``, the arms of ``report.json`` with the experiment runner's ``summarize``, RL
step rows shaped as ``rl.grpo`` logs them. Trajectory text is hostile on purpose (markup,
``</script>``, line separators); one line per model holds a lone surrogate, written as another
tool would (JSON ``\\ud800`` escape), since pydantic cannot serialize one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from searchprime.eval.score import score_one
from searchprime.records import (
    BEHAVIORS,
    Action,
    BehaviorEvidence,
    BehaviorLabels,
    Task,
    Trajectory,
    Turn,
    write_jsonl,
)

HOSTILE = (
    '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    "<b>bold?</b> &amp; \u2028 line\u2029sep"
)
LONE = "lone surrogate: \ud800 here"
TRAPS = ("conflict", "alias", "overspecific", "distractor")


def make_tasks(n: int, seed: int = 0) -> list[Task]:
    """``n`` tasks with hops 1-3, 0-2 traps and two data sources."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        traps = rng.sample(TRAPS, rng.choice((0, 0, 1, 2)))
        question = f"Where was person {i} born?"
        if i == 0:
            question += " " + HOSTILE
        tasks.append(
            Task(
                id=f"t{i:05d}",
                question=question,
                answers=[f"City{i}"],
                data_source="sandbox" if i % 3 else "other",
                meta={"hops": 1 + i % 3, "traps": traps},
            )
        )
    return tasks


def _docs(k: int, docs: int) -> str:
    lines = ["Doc 1 (Title: A) [Source: forum | x.example]", f"Some text {k}. {HOSTILE}"]
    for d in range(2, docs + 1):
        lines += [
            f"Doc {d} (Title: Page {d}) [Source: encyclopedia | wiki.example]",
            f"Entity {k}-{d} was founded in City{d} and is known for its long history of "
            "trade, printing and river transport; it is mentioned in regional guides.",
        ]
    return "<information>\n" + "\n".join(lines) + "\n</information>"


def make_trajectory(
    task: Task,
    model: str,
    rng: random.Random,
    p_correct: float,
    p_behavior: float,
    docs: int = 1,
) -> Trajectory:
    """One labelled, scored trajectory of ``model`` on ``task`` (``docs`` per observation)."""
    n_search = rng.randint(1, 5)
    turns = []
    for k in range(n_search):
        kind = "invalid" if rng.random() < 0.05 else "search"
        turns.append(
            Turn(
                index=k,
                context=[0],
                output=f"<think>thinking {k}</think><search>query {k} {task.id}</search>",
                action=Action(
                    kind=kind,
                    content=f"query {k} for {task.id}" if kind == "search" else "",
                    think=f"step {k}: I should look up {task.id}." + (" " + HOSTILE if k else ""),
                    error="no action tag" if kind == "invalid" else None,
                ),
                observation=_docs(k, docs),
            )
        )
    correct = rng.random() < p_correct
    answer = task.answers[0] if correct else "Nowhere"
    turns.append(
        Turn(
            index=n_search,
            context=[0],
            output=f"<answer>{answer}</answer>",
            action=Action(kind="answer", content=answer, think="I am done."),
        )
    )
    behaviors = {}
    for b in BEHAVIORS:
        roll = rng.random()
        present = None if roll < 0.05 else roll < 0.05 + p_behavior
        where = sorted(rng.sample(range(len(turns)), rng.randint(1, 2))) if present else []
        behaviors[b] = BehaviorEvidence(
            present=present,
            turns=where,
            rationale="; ".join(f"turn {k}: shows {b} <i>{k}</i>" for k in where) or "not shown",
        )
    traj = Trajectory(
        task_id=task.id,
        question=task.question,
        answers=task.answers,
        data_source=task.data_source,
        policy={"model": model},
        agent={"max_turns": 8},
        turns=turns,
        final_answer=answer,
        termination="answer",
        labels=BehaviorLabels(annotator="rules:v1", behaviors=behaviors),
    )
    traj.scores = score_one(traj, traj.answers)
    return traj


def steps_rows(n_steps: int, rng: random.Random) -> list[dict]:
    """RL step log rows in the shape ``rl.grpo`` writes."""
    rows = []
    for s in range(1, n_steps + 1):
        rows.append(
            {
                "step": s,
                "episodes": 8,
                "reward_mean": round(0.1 + 0.05 * s + rng.random() * 0.05, 4),
                "em": round(0.1 + 0.04 * s, 4),
                "zero_std_groups": 0.5,
                "valid_actions": 0.9,
                "turns": 3.0,
                "searches": 2.0,
                "behaviors": {b: round(rng.random(), 3) for b in BEHAVIORS},
                "trl": {"entropy": 0.5 - 0.01 * s, "kl": 0.001 * s, "loss": float("nan")},
            }
        )
    return rows


def write_run(
    root: Path,
    *,
    n_tasks: int = 30,
    models: dict[str, tuple[float, float]] | None = None,
    seed: int = 0,
    docs: int = 1,
) -> dict:
    """Write a run folder; ``models``: name -> (p_correct, p_behavior). Returns report.json."""
    from searchprime.experiment import summarize

    models = models or {"base": (0.4, 0.2), "primed": (0.5, 0.6), "primed+rl": (0.6, 0.6)}
    rng = random.Random(seed)
    tasks = make_tasks(n_tasks, seed)
    write_jsonl(root / "world" / "tasks" / "dev.jsonl", tasks)
    report: dict = {"name": "synthetic", "arms": {}}
    for model, (p_correct, p_behavior) in models.items():
        trajs = [make_trajectory(t, model, rng, p_correct, p_behavior, docs) for t in tasks]
        path = root / "eval" / f"{model}.labelled.jsonl"
        write_jsonl(path, trajs[1:])
        # a foreign writer: a lone surrogate as a JSON escape (pydantic refuses to write one)
        trajs[0].turns[0].action.think = LONE
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(trajs[0].model_dump(mode="json")) + "\n")
        report["arms"][model] = summarize(trajs, tasks, None)
    for model in models:
        if model.endswith("+rl"):
            start = model.removesuffix("+rl")
            report["arms"][model]["rl"] = {"steps": 5, "reward_first": 0.1, "reward_last": 0.3}
            write_jsonl(root / "rl" / start / "steps.jsonl", steps_rows(5, rng))
    report["seconds"] = {"total": 12.5}
    (root / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
