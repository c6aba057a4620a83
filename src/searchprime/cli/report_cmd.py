"""``searchprime report RUN_DIR|FILES... --out report.html``."""

from __future__ import annotations

from pathlib import Path

import typer

from searchprime.cli._common import summary


def report(
    sources: list[Path] = typer.Argument(
        ...,
        exists=True,
        help="An experiment run folder, or files: report.json, trajectories JSONL (one per "
        "model, named by stem), rl/<model>/steps.jsonl.",
    ),
    out_path: Path | None = typer.Option(
        None, "--out", help="HTML file to write (default: <run folder>/report.html)."
    ),
    tasks: Path | None = typer.Option(
        None, help="Task file giving hops / traps of explicit trajectory files."
    ),
) -> None:
    """One self-contained HTML report: results table, plots and a trajectory viewer."""
    from searchprime.errors import ConfigError
    from searchprime.report import load_report, write_html

    if out_path is None:
        if len(sources) != 1 or not sources[0].is_dir():
            raise ConfigError("--out: required unless the source is one run folder")
        out_path = sources[0] / "report.html"
    rep = load_report(sources, tasks=tasks)
    write_html(rep, out_path)
    size = out_path.stat().st_size / 1e6
    summary(
        f"report of {len(rep.arms)} models, {len(rep.trajectories)} trajectories "
        f"({size:.1f} MB) -> {out_path}"
    )


def register(app: typer.Typer) -> None:
    """Add ``report``."""
    app.command("report")(report)
