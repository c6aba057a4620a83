"""``searchprime behaviors discover|annotate|stats|agreement|failures``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.table import Table

from searchprime.cli._common import console, out, progress_bar, summary
from searchprime.errors import ConfigError

behaviors_app = typer.Typer(
    name="behaviors",
    help="Discover, annotate and count reasoning behaviors in trajectories.",
    no_args_is_help=True,
)


def _llm(url: str | None, model: str | None, key_env: str | None):
    if not url:
        raise ConfigError("--llm-url: an OpenAI-compatible endpoint is required for this judge")
    from searchprime.llm.openai_http import OpenAIChat

    llm = OpenAIChat(url, model, api_key_env=key_env)
    if model is None:
        llm.describe()  # learns the served model now, so cache keys name it from the start
    return llm


def _close(llm) -> None:
    if llm is not None:
        asyncio.run(llm.aclose())


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


@behaviors_app.command("discover")
def discover_cmd(
    first: Path = typer.Argument(..., exists=True, help="Trajectories (scored or with golds)."),
    second: Path | None = typer.Argument(None, help="Optional second run / model to pair with."),
    out_path: Path = typer.Option(..., "--out", help="Taxonomy JSON to write."),
    llm_url: str | None = typer.Option(None, help="OpenAI-compatible base URL of the LLM."),
    llm_model: str | None = typer.Option(None, help="Model name (default: the server's)."),
    llm_key_env: str | None = typer.Option(None, help="Env var holding the API key."),
    max_behaviors: int = typer.Option(4, "-k", "--max-behaviors", help="K: most behaviors kept."),
    max_pairs: int = typer.Option(50, help="Most success/failure pairs analysed."),
    max_tokens: int = typer.Option(512, help="Max tokens per LLM reply."),
    cache: Path | None = typer.Option(None, help="Call cache (default <out>.cache.sqlite)."),
) -> None:
    """Pair successes with failures, then reason -> extract -> merge into <= K behaviors."""
    from searchprime.behaviors.discover import DiscoverConfig, discover_files

    cfg = DiscoverConfig(max_behaviors=max_behaviors, max_pairs=max_pairs, max_tokens=max_tokens)
    llm = _llm(llm_url, llm_model, llm_key_env)
    try:
        result = discover_files(
            first, second, out_path, llm, cfg, cache=cache, on_step=lambda s: None
        )
    finally:
        _close(llm)
    for note in result.notes:
        console.print(f"note: {note}")
    table = Table(title="discovered behaviors")
    table.add_column("name")
    table.add_column("definition")
    for b in result.taxonomy.behaviors:
        table.add_row(b.name, b.definition)
    out.print(table)
    summary(
        f"{result.pairs} pairs -> {result.extracted} behaviors extracted -> "
        f"{len(result.taxonomy.behaviors)} after {result.rounds} merge rounds; "
        f"LLM calls {result.llm_calls} (cache hits {result.cache_hits}) -> {out_path}"
    )


@behaviors_app.command("annotate")
def annotate_cmd(
    trajectories: Path = typer.Argument(..., exists=True, help="Trajectories JSONL."),
    out_path: Path = typer.Option(..., "--out", help="Labelled trajectories JSONL (appended)."),
    judge: str = typer.Option(
        "llm",
        help="'llm' (any LLM judge), 'rules' (sandbox cue phrases) or "
        "'grounded' (sandbox: what the agent did, not what it said).",
    ),
    world: Path | None = typer.Option(
        None, help="Sandbox world folder (for --judge rules|grounded)."
    ),
    taxonomy: Path | None = typer.Option(None, help="Taxonomy YAML/JSON (default: the four)."),
    llm_url: str | None = typer.Option(None, help="OpenAI-compatible base URL of the judge."),
    llm_model: str | None = typer.Option(None, help="Judge model name."),
    llm_key_env: str | None = typer.Option(None, help="Env var holding the API key."),
    max_chars: int = typer.Option(12000, help="Longer trajectories are judged in chunks."),
    max_tokens: int = typer.Option(512, help="Max tokens per judge reply."),
    cache: Path | None = typer.Option(None, help="Call cache (default <out>.cache.sqlite)."),
    limit: int | None = typer.Option(None, help="Only the first N trajectories."),
    concurrency: int = typer.Option(8, help="Trajectories judged at once."),
) -> None:
    """Label each trajectory with behaviors; reruns skip trajectories already labelled."""
    from searchprime.behaviors.annotate import LLMAnnotator, RulesAnnotator, annotate_file
    from searchprime.behaviors.grounded import GroundedAnnotator
    from searchprime.behaviors.taxonomy import load_taxonomy
    from searchprime.records import iter_json_lines, latest_per_key

    # checks the file before a judge is contacted; a repeated key is annotated once (its last)
    records = ((n, obj) for n, obj in iter_json_lines(trajectories) if obj)
    total = len(latest_per_key(records, lambda o: (o.get("task_id"), o.get("attempt", 0)))[0])
    llm = None
    if judge in ("rules", "grounded"):
        if world is None:
            raise ConfigError(f"--world: the {judge} judge needs the sandbox world folder")
        annotator = RulesAnnotator(world) if judge == "rules" else GroundedAnnotator(world)
    elif judge == "llm":
        llm = _llm(llm_url, llm_model, llm_key_env)
        annotator = LLMAnnotator(
            llm,
            load_taxonomy(taxonomy),
            cache=cache or Path(str(out_path) + ".cache.sqlite"),
            max_chars=max_chars,
            max_tokens=max_tokens,
        )
    else:
        raise ConfigError(f"--judge: expected 'llm', 'rules' or 'grounded', got {judge!r}")
    if limit is not None:
        total = min(total, limit)
    try:
        with progress_bar(f"annotating ({annotator.name})", total) as advance:
            advance(0)
            res = annotate_file(
                trajectories,
                out_path,
                annotator,
                limit=limit,
                concurrency=concurrency,
                on_done=advance,
            )
    finally:
        _close(llm)
    calls = f"; LLM calls {res.llm_calls} (cache hits {res.cache_hits})" if llm else ""
    summary(
        f"labelled {res.written} trajectories ({res.skipped} already done, "
        f"{res.unknown} unknown judgements){calls} -> {out_path}"
    )


@behaviors_app.command("stats")
def stats_cmd(
    files: list[Path] = typer.Argument(
        ..., exists=True, help="Labelled trajectories, one per run."
    ),
    names: list[str] | None = typer.Option(None, "--name", help="Run names (default: stems)."),
    out_dir: Path | None = typer.Option(None, help="Write stats.json and PNG plots here."),
    correctness: str = typer.Option("auto", help="auto (judge, else EM) | em | cover_em | judge."),
    taxonomy: Path | None = typer.Option(None, help="Restrict to this taxonomy's behaviors."),
    group_by: str | None = typer.Option(
        None, help="Split each file by a dotted field, e.g. policy.name or meta.preset."
    ),
) -> None:
    """Per-behavior rates overall / among correct / among incorrect, and links to accuracy."""
    from searchprime.behaviors.stats import compute_stats
    from searchprime.behaviors.taxonomy import load_taxonomy
    from searchprime.records import atomic_write_text
    from searchprime.report.plots import plot_behavior_stats

    if names and len(names) != len(files):
        raise ConfigError(f"--name: {len(names)} names for {len(files)} files")
    behaviors = load_taxonomy(taxonomy).names if taxonomy else None
    report = compute_stats(
        files, names=names, behaviors=behaviors, correctness=correctness, group_by=group_by
    )
    for run in report.runs:
        table = Table(
            title=(
                f"{run.run}: n={run.n} labelled (correct {run.n_correct}, incorrect "
                f"{run.n_incorrect}; unlabelled {run.unlabelled} left out); accuracy "
                f"{_fmt(run.accuracy)}"
            )
        )
        for col in ("behavior", "all", "correct", "incorrect", "unknown", "acc w/", "acc w/o"):
            table.add_column(col, justify="left" if col == "behavior" else "right")
        table.add_column("phi", justify="right")
        for name, b in run.behaviors.items():
            table.add_row(
                name,
                f"{b.present}/{run.n} = {_fmt(b.rate)}",
                f"{b.present_correct}/{run.n_correct} = {_fmt(b.rate_correct)}",
                f"{b.present_incorrect}/{run.n_incorrect} = {_fmt(b.rate_incorrect)}",
                str(b.unknown),
                _fmt(b.acc_with),
                _fmt(b.acc_without),
                _fmt(b.phi),
            )
        a_c = run.all_present_correct
        table.add_row(
            "ALL behaviors",
            f"{run.all_present}/{run.n} = {_fmt(run.all_rate)}",
            f"{a_c}/{run.n_correct} = {_fmt(run.all_rate_correct)}",
            f"{run.all_present - a_c}/{run.n_incorrect} = {_fmt(run.all_rate_incorrect)}",
            "",
            "",
            "",
            "",
        )
        out.print(table)
    written = ""
    if out_dir is not None:
        atomic_write_text(out_dir / "stats.json", report.model_dump_json(indent=2) + "\n")
        paths = plot_behavior_stats(report, out_dir)
        written = f"; wrote stats.json and {len(paths)} plots to {out_dir}"
    summary(
        f"stats over {len(report.runs)} run(s), {sum(r.n for r in report.runs)} labelled{written}"
    )


@behaviors_app.command("agreement")
def agreement_cmd(
    labelled: Path = typer.Argument(..., exists=True, help="Labelled teacher trajectories."),
    out_json: Path | None = typer.Option(None, "--out", help="Write the report as JSON."),
) -> None:
    """Precision / recall / F1 of the labels against the sandbox teachers' ground truth."""
    from searchprime.behaviors.agreement import agreement_file
    from searchprime.records import atomic_write_text

    report = agreement_file(labelled)
    table = Table(title=f"agreement of {report.annotator} with teacher truth (n={report.n})")
    for col in ("behavior", "support", "TP", "FP", "FN", "TN", "unknown", "P", "R", "F1"):
        table.add_column(col, justify="left" if col == "behavior" else "right")
    for name, r in report.behaviors.items():
        table.add_row(
            name,
            str(r.support),
            str(r.tp),
            str(r.fp),
            str(r.fn),
            str(r.tn),
            str(r.unknown),
            _fmt(r.precision),
            _fmt(r.recall),
            _fmt(r.f1),
        )
    out.print(table)
    if out_json is not None:
        atomic_write_text(out_json, json.dumps(report.model_dump(), indent=2) + "\n")
    f1s = [r.f1 for r in report.behaviors.values() if r.f1 is not None]
    summary(
        f"agreement over {report.n} trajectories ({report.unlabelled} unlabelled); "
        f"min F1 {_fmt(min(f1s) if f1s else None)}"
    )


@behaviors_app.command("failures")
def failures_cmd(
    files: list[Path] = typer.Argument(..., exists=True, help="Trajectory files, one per run."),
    names: list[str] | None = typer.Option(None, "--name", help="Run names (default: stems)."),
    world_dir: Path | None = typer.Option(
        None,
        "--world",
        exists=True,
        help="Sandbox world: adds plan, overshoot, near-duplicate and low-authority modes.",
    ),
    correctness: str = typer.Option("auto", help="auto (judge, else EM) | em | cover_em | judge."),
    out_json: Path | None = typer.Option(None, "--out", help="Write runs and transitions as JSON."),
) -> None:
    """Why trajectories fail: one failure mode each; with two or more runs, what each run lost
    and gained against the first on the same tasks."""
    from searchprime.behaviors.failures import FAILURES, classify, failure_run, transitions
    from searchprime.behaviors.grounded import _Resolver
    from searchprime.records import Trajectory, atomic_write_text, read_latest

    if names and len(names) != len(files):
        raise ConfigError(f"--name: {len(names)} names for {len(files)} files")
    run_names = names or [f.stem for f in files]
    world = res = None
    if world_dir is not None:
        from searchprime.world import load_world

        world = load_world(world_dir)
        res = _Resolver(world)
    classified = []
    for path in files:
        trajs, _ = read_latest(path, Trajectory)
        classified.append([classify(t, world, res, correctness) for t in trajs])
    runs = [failure_run(n, c) for n, c in zip(run_names, classified, strict=True)]
    table = Table(title="failure modes (share of trajectories)")
    table.add_column("mode")
    for run in runs:
        table.add_column(f"{run.run} (n={run.n})", justify="right")
    for mode in FAILURES:
        table.add_row(mode, *(f"{run.modes[mode]} = {run.rate(mode):.2f}" for run in runs))
    table.add_row("answered", *(f"{run.answered:.2f}" for run in runs))
    table.add_row(
        "turns / searches", *(f"{r.mean_turns:.1f} / {r.mean_searches:.1f}" for r in runs)
    )
    table.add_row("repeated searches", *(f"{run.repeat_rate:.2f}" for run in runs))
    out.print(table)
    moves = [
        transitions(run_names[0], classified[0], name, c)
        for name, c in zip(run_names[1:], classified[1:], strict=True)
    ]
    for t in moves:
        kept = t.counts.get("correct", {}).get("correct", 0)
        right = sum(t.counts.get("correct", {}).values())
        lost = ", ".join(f"{m} {k}" for m, k in sorted(t.lost.items(), key=lambda x: -x[1]))
        gained = ", ".join(f"{m} {k}" for m, k in sorted(t.gained.items(), key=lambda x: -x[1]))
        out.print(
            f"{t.b} lost {right - kept} of the {right} tasks {t.a} got right"
            f"{f' ({lost})' if lost else ''}; gained {sum(t.gained.values())}"
            f"{f' (was {gained})' if gained else ''}; {t.n} tasks in both"
        )
    if out_json is not None:
        body = {
            "runs": [r.model_dump() for r in runs],
            "transitions": [t.model_dump() for t in moves],
        }
        atomic_write_text(out_json, json.dumps(body, indent=2) + "\n")
    summary(f"failure modes of {sum(r.n for r in runs)} trajectories in {len(runs)} run(s)")


def register(app: typer.Typer) -> None:
    """Add the ``behaviors`` sub-app to ``app``."""
    app.add_typer(behaviors_app, name="behaviors")
