"""``searchprime score``: EM / cover-EM / F1 and an optional LLM judge per trajectory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from searchprime.cli._common import out, progress_bar, summary


def make_judge_llm(url: str, model: str | None, api_key_env: str | None = None):
    """An OpenAI-compatible judge endpoint (imported lazily)."""
    from searchprime.llm.openai_http import OpenAIChat

    llm = OpenAIChat(url, model, api_key_env=api_key_env)
    if model is None:
        llm.describe()  # learns the served model now, so cache keys name it from the start
    return llm


def score(
    trajectories: Path = typer.Argument(..., help="Trajectories JSONL.", exists=True),
    out_path: Path = typer.Option(..., "--out", help="Scored trajectories JSONL (atomic)."),
    tasks: Path | None = typer.Option(None, "--tasks", help="Tasks file: golds + denominator."),
    data_source: str | None = typer.Option(
        None,
        "--data-source",
        help="Source name for tasks and trajectories that name none (GAIA, HLE files).",
    ),
    judge_url: str | None = typer.Option(None, help="OpenAI-compatible base URL of a judge."),
    judge_model: str | None = typer.Option(None, help="Judge model name (default: the server's)."),
    judge_key_env: str | None = typer.Option(None, help="Env var holding the judge's API key."),
    judge_cache: Path | None = typer.Option(
        None, help="SQLite cache of judge calls (default: <out>.judge-cache.sqlite)."
    ),
    judge_prompt: str | None = typer.Option(
        None,
        "--judge-prompt",
        help="bp | searchprime: the judge's prompts (default: bp, the paper's own, for Behavior "
        "Priming data, so scores compare with the paper's; else searchprime).",
    ),
    reward_hacking: bool | None = typer.Option(
        None,
        "--reward-hacking/--no-reward-hacking",
        help="Also audit answers for reward hacking (default: on with the bp prompts, as the "
        "paper did; off otherwise).",
    ),
    judge_max_tokens: int = typer.Option(256, help="Max tokens of each judge reply."),
    judge_retries: int = typer.Option(2, help="Retries of an unparseable judge reply."),
) -> None:
    """Score every trajectory; a task with no trajectory or no answer counts as wrong.

    A (task, attempt) written more than once is scored by its last record; a truncated last
    line (a killed writer) is skipped. Both are counted in the summary.
    """
    from searchprime.eval.judge import LLMJudge
    from searchprime.eval.judge_prompts import default_judge_prompt, get_judge_prompts
    from searchprime.eval.score import load_task_file, score_trajectories
    from searchprime.records import Trajectory, read_latest

    # read and check every input before a judge is contacted or a progress bar drawn
    trajs, read = read_latest(trajectories, Trajectory)
    task_list = load_task_file(tasks, data_source) if tasks is not None else None
    if judge_prompt is not None:
        get_judge_prompts(judge_prompt)  # an unknown name fails before any work
    judge = None
    llm = None
    if judge_url:
        prompts = judge_prompt or default_judge_prompt(
            [t.data_source for t in trajs] + [t.data_source for t in task_list or []],
            [tasks] if tasks is not None else [],
        )
        if reward_hacking is None:
            reward_hacking = prompts == "bp"
        llm = make_judge_llm(judge_url, judge_model, judge_key_env)
        cache = judge_cache or Path(str(out_path) + ".judge-cache.sqlite")
        judge = LLMJudge(
            llm,
            cache=cache,
            check_hacking=bool(reward_hacking),
            prompts=prompts,
            max_tokens=judge_max_tokens,
            retries=judge_retries,
        )
    try:
        with progress_bar("scoring", len(trajs)) as advance:
            report = score_trajectories(
                trajs,
                out_path,
                tasks=task_list,
                judge=judge,
                on_done=advance,
                read=read,
                data_source=data_source,
            )
    finally:
        if llm is not None:
            import asyncio

            asyncio.run(llm.aclose())
    table = Table(title="scores")
    cols = ["source", "n", "missing", "no answer", "EM", "cover-EM", "F1"]
    if judge is not None:
        cols += ["judge", "unknown"]
    for col in cols:
        table.add_column(col, justify="left" if col == "source" else "right")
    groups = list(report.by_source.items()) + [("ALL", report.overall)]
    for src, g in groups:
        row = [src, str(g.n), str(g.missing), str(g.no_answer)]
        row += [f"{g.em:.3f}", f"{g.cover_em:.3f}", f"{g.f1:.3f}"]
        if judge is not None:
            row += [f"{g.judge:.3f}", str(g.judge_unknown)]
        table.add_row(*row)
    out.print(table)
    extra = (
        f", judge ({report.judge_prompt} prompts) calls {report.judge_calls} "
        f"(cache hits {report.judge_cache_hits})"
        if judge
        else ""
    )
    summary(
        f"scored {report.overall.n - report.overall.missing} trajectories "
        f"(+{report.overall.missing} missing tasks counted wrong; {_skipped(report)}): "
        f"EM {report.overall.em:.3f}, F1 {report.overall.f1:.3f}{extra} -> {out_path}"
    )


def _skipped(report) -> str:
    return (
        f"skipped {report.skipped_truncated} truncated + {report.skipped_duplicates} "
        "duplicate lines, last record per key kept"
    )


def register(app: typer.Typer) -> None:
    """Add ``score`` to ``app``."""
    app.command("score")(score)
