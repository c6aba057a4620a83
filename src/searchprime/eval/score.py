"""Score trajectories: EM, cover-EM, token F1 and optionally an LLM judge.

Honest denominators: a trajectory without a final answer scores 0 on every metric, and a
task of the tasks file that has no trajectory counts as one wrong attempt in the report. A
``(task_id, attempt)`` written more than once is scored once, by its last record (a rerun's
retry supersedes an earlier attempt); the report counts what was skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from searchprime.errors import ConfigError
from searchprime.eval.judge import LLMJudge
from searchprime.eval.metrics import (
    cover_em,
    exact_match,
    is_regex_source,
    split_golds,
    token_f1,
)
from searchprime.records import (
    ReadReport,
    Scores,
    Task,
    Trajectory,
    atomic_write_text,
    read_jsonl,
    read_latest,
    write_jsonl,
)

__all__ = [
    "CORRECTNESS",
    "GroupScore",
    "ScoreReport",
    "is_correct",
    "load_task_file",
    "score_file",
    "score_one",
    "score_trajectories",
]


class GroupScore(BaseModel):
    """Mean metrics over one group (all, or one data_source)."""

    n: int = Field(description="Denominator: trajectories plus tasks with no trajectory.")
    missing: int = Field(default=0, description="Tasks with no trajectory (counted wrong).")
    no_answer: int = Field(default=0, description="Trajectories without a final answer.")
    em: float = 0.0
    cover_em: float = 0.0
    f1: float = 0.0
    judge: float | None = Field(default=None, description="Judge accuracy (unknown = wrong).")
    judge_unknown: int = 0
    reward_hacking: int = 0


class ScoreReport(BaseModel):
    """What ``score_file`` measured; also written next to the output as JSON."""

    trajectories: str
    out: str
    overall: GroupScore
    by_source: dict[str, GroupScore]
    missing_task_ids: list[str] = Field(default_factory=list)
    judge: str | None = None
    judge_prompt: str | None = Field(
        default=None, description="The judge's prompt set (bp | searchprime), when judged."
    )
    judge_calls: int = 0
    judge_cache_hits: int = 0
    skipped_truncated: int = Field(
        default=0, description="Partial last lines skipped (the remains of a killed writer)."
    )
    skipped_duplicates: int = Field(
        default=0,
        description="Earlier records of a repeated (task_id, attempt) skipped; the last is scored.",
    )


def load_task_file(path: str | Path, data_source: str | None = None) -> list[Task]:
    """Tasks from any layout the task loaders accept (falls back to Task JSONL).

    ``data_source`` names the source of tasks that name none (see ``load_tasks``).
    """
    try:
        from searchprime.tasks import load_tasks  # type: ignore[attr-defined]
    except ImportError:
        load_tasks = None
    if load_tasks is not None:
        return list(load_tasks(path, data_source=data_source))
    tasks = list(read_jsonl(path, Task))
    for t in tasks:
        t.data_source = t.data_source or data_source
    return tasks


def score_one(traj: Trajectory, golds: list[str], data_source: str | None = None) -> Scores:
    """String metrics of one trajectory (no judge).

    Golds of a regex source (``curatedtrec``: ``data_source``, else the trajectory's own) are
    matched as patterns by EM and cover-EM (see :mod:`searchprime.eval.metrics`).
    """
    pred = traj.final_answer
    if pred is None or not pred.strip():
        return Scores(em=0.0, cover_em=0.0, f1=0.0)
    regex = is_regex_source(data_source or traj.data_source)
    return Scores(
        em=exact_match(pred, golds, regex=regex),
        cover_em=cover_em(pred, golds, regex=regex),
        f1=token_f1(pred, golds),
    )


#: Ways to decide correctness: the judge when recorded else EM, or one metric (>= 1.0).
CORRECTNESS = ("auto", "judge", "em", "cover_em", "f1")


def is_correct(traj: Trajectory, metric: str = "auto") -> bool:
    """Correctness used by statistics and selection.

    ``auto``: the judge verdict when one was recorded, else exact match. Unscored
    trajectories are scored on the fly from their stored gold answers. Unknown = wrong.
    """
    if metric not in CORRECTNESS:
        raise ConfigError(f"correctness: expected one of {', '.join(CORRECTNESS)}, got {metric!r}")
    scores = traj.scores or score_one(traj, split_golds(traj.answers))
    if metric in ("auto", "judge") and scores.judge is not None:
        return bool(scores.judge)
    if metric == "judge":
        return False
    value = {"em": scores.em, "cover_em": scores.cover_em, "f1": scores.f1}.get(
        "em" if metric == "auto" else metric
    )
    return bool(value is not None and value >= 1.0)


def _group(rows: list[tuple[Scores, bool]], missing: int, judged: bool) -> GroupScore:
    n = len(rows) + missing
    if n == 0:
        return GroupScore(n=0)

    def mean(attr: str) -> float:
        return sum(getattr(s, attr) or 0.0 for s, _ in rows) / n

    return GroupScore(
        n=n,
        missing=missing,
        no_answer=sum(1 for _, no_ans in rows if no_ans),
        em=mean("em"),
        cover_em=mean("cover_em"),
        f1=mean("f1"),
        judge=(sum(1 for s, _ in rows if s.judge) / n) if judged else None,
        judge_unknown=sum(1 for s, no_ans in rows if judged and not no_ans and s.judge is None),
        reward_hacking=sum(1 for s, _ in rows if s.reward_hacking),
    )


async def _score_async(
    trajs: list[Trajectory],
    golds_of: Callable[[Trajectory], tuple[list[str], str | None]],
    judge: LLMJudge | None,
    on_done: Callable[[int], None] | None,
) -> None:
    async def one(traj: Trajectory) -> None:
        golds, data_source = golds_of(traj)
        scores = score_one(traj, golds, data_source)
        if judge is not None:
            if traj.final_answer and traj.final_answer.strip():
                verdict = await judge.judge(traj.question, traj.final_answer, golds, data_source)
                scores.judge = verdict.correct
                scores.judge_rationale = verdict.rationale
                scores.reward_hacking = verdict.reward_hacking
            else:
                scores.judge, scores.judge_rationale = False, "no final answer"
        traj.scores = scores
        if on_done is not None:
            on_done(1)

    await asyncio.gather(*(one(t) for t in trajs))


def score_file(
    trajectories: str | Path,
    out: str | Path,
    *,
    tasks: str | Path | None = None,
    judge: LLMJudge | None = None,
    on_done: Callable[[int], None] | None = None,
    data_source: str | None = None,
) -> ScoreReport:
    """Fill ``Trajectory.scores`` for every record of ``trajectories`` and write ``out``.

    Gold answers come from the trajectory itself, or from ``tasks`` when given (the tasks
    file wins, and also defines the denominator). ``out`` is written atomically; the report is
    also written to ``<out>.summary.json``. The last record of each (task, attempt) is scored.
    ``data_source`` names the source of tasks and trajectories that name none (else they are
    reported as ``unknown``); one that names its own keeps it.
    """
    trajs, read = read_latest(trajectories, Trajectory)
    task_list = load_task_file(tasks, data_source) if tasks is not None else None
    return score_trajectories(
        trajs,
        out,
        tasks=task_list,
        judge=judge,
        on_done=on_done,
        read=read,
        data_source=data_source,
    )


def score_trajectories(
    trajs: list[Trajectory],
    out: str | Path,
    *,
    tasks: list[Task] | None = None,
    judge: LLMJudge | None = None,
    on_done: Callable[[int], None] | None = None,
    read: ReadReport | None = None,
    data_source: str | None = None,
) -> ScoreReport:
    """Score already-read trajectories (see :func:`score_file`); ``read`` says where from."""
    read = read or ReadReport()
    task_by_id: dict[str, Task] = {t.id: t for t in tasks or []}
    for t in trajs:  # a record without a source takes its task's, then the override
        if t.data_source is None:
            task = task_by_id.get(t.task_id)
            t.data_source = (task.data_source if task else None) or data_source

    def golds_of(traj: Trajectory) -> tuple[list[str], str | None]:
        """Golds and data source: the task's when the tasks file has it, else the record's."""
        task = task_by_id.get(traj.task_id)
        if task is None:
            return split_golds(traj.answers), traj.data_source
        return split_golds(task.answers), task.data_source or traj.data_source

    asyncio.run(_score_async(trajs, golds_of, judge, on_done))
    write_jsonl(out, trajs)

    def source_of(traj_source: str | None, task: Task | None) -> str:
        task_source = task.data_source if task else None
        return traj_source or task_source or data_source or "unknown"

    seen = {t.task_id for t in trajs}
    missing = [tid for tid in task_by_id if tid not in seen]
    groups: dict[str, list[tuple[Scores, bool]]] = defaultdict(list)
    missing_by: dict[str, int] = defaultdict(int)
    for t in trajs:
        no_ans = not (t.final_answer and t.final_answer.strip())
        groups[source_of(t.data_source, task_by_id.get(t.task_id))].append((t.scores, no_ans))
    for tid in missing:
        missing_by[source_of(None, task_by_id[tid])] += 1
    judged = judge is not None
    all_rows = [r for rows in groups.values() for r in rows]
    report = ScoreReport(
        trajectories=read.path,
        out=str(out),
        overall=_group(all_rows, len(missing), judged),
        by_source={
            src: _group(groups.get(src, []), missing_by.get(src, 0), judged)
            for src in sorted(set(groups) | set(missing_by))
        },
        missing_task_ids=missing,
        judge=judge.name if judge else None,
        judge_prompt=judge.prompts.name if judge else None,
        judge_calls=judge.caller.calls if judge else 0,
        judge_cache_hits=judge.caller.cache_hits if judge else 0,
        skipped_truncated=read.truncated,
        skipped_duplicates=read.duplicates,
    )
    summary_path = Path(str(out) + ".summary.json")
    atomic_write_text(summary_path, json.dumps(report.model_dump(), indent=2) + "\n")
    return report


def report_rows(report: ScoreReport) -> list[dict[str, Any]]:
    """Flat rows (source, n, metrics) for tables."""
    rows = [{"source": src, **g.model_dump()} for src, g in report.by_source.items()]
    rows.append({"source": "ALL", **report.overall.model_dump()})
    return rows
