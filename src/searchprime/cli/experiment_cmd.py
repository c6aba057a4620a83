"""`searchprime experiment` (the study from one YAML) and `quickstart` (the embedded default)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from searchprime.cli._common import console, out, progress_bar, summary

QUICKSTART = "quickstart.yaml"


def _exit_on_term(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _term_as_exit() -> Iterator[None]:
    """SIGTERM (the end of a session, `kill`) raises SystemExit in the study, so the stage
    ledger notes the stage as failed with its time and the llama.cpp servers are stopped by
    their context managers, instead of the process vanishing between two writes."""
    previous = signal.signal(signal.SIGTERM, _exit_on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(
    config_path: Path | None, out_dir: Path, overrides: dict, carry: Path | None = None
) -> None:
    from rich import box
    from rich.table import Table

    from searchprime.config import load_config
    from searchprime.experiment import ExperimentConfig, report_rows, run_experiment

    cfg = load_config(ExperimentConfig, config_path, overrides)
    with _term_as_exit():
        report = run_experiment(
            cfg,
            out_dir,
            progress=progress_bar,
            log=lambda m: console.print(m, highlight=False),
            carry=carry,
        )
    if "seeds" in report:
        _print_seeds(report)
        summary(
            f"study '{cfg.name}' over seeds {report['seeds']}: report {out_dir / 'report.json'}"
        )
        return
    rows = report_rows(report)
    table = Table(
        title="behavior rates: overall/where the task offers the situation",
        box=box.SIMPLE,
        padding=(0, 1),
    )
    for col in rows[0]:
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row.values())
    out.print(table)
    if any("rl" in arm for arm in report["arms"].values()):
        out.print("ΔEM: dev EM after RL minus the EM of the model RL started from.")
    print_findings(out, report)
    summary(
        f"study '{cfg.name}' finished in {report['seconds']['total']:.0f}s: "
        f"report {out_dir / 'report.html'} (data: report.json), plots in {out_dir / 'plots'}"
    )


def print_findings(out: Any, report: dict) -> None:
    """The paired comparisons, the paper's claims with their verdicts, and degeneracy warnings."""
    from rich.markup import escape

    for c in report.get("comparisons", []):
        lo, hi = c["ci95"]
        p = "-" if c.get("mcnemar_p") is None else f"{c['mcnemar_p']:.3f}"
        out.print(
            f"{escape(c['model'])} vs {escape(c['against'])}: EM {c['delta']:+.3f} "
            f"(paired 95% CI {lo:+.3f}..{hi:+.3f}; {c['gained']} gained, {c['lost']} lost; "
            f"McNemar p {p}) on {c['n']} dev tasks",
            highlight=False,
        )
    for c in report.get("claims", []):
        ratio = "-" if c.get("ratio") is None else f"{c['ratio']:.2f}x"
        out.print(
            f"claim: {escape(c['statement'])} ({escape(c['model'])} vs {escape(c['against'])}): "
            f"{c['verdict']}; EM {c['delta']:+.3f}, ratio {ratio}",
            highlight=False,
        )
    # repeated under the table: the first thing read must not be a broken model shown as fine
    for name, arm in report["arms"].items():
        if arm.get("degenerate"):
            out.print(
                f"[bold yellow]WARNING:[/bold yellow] {escape(name)} looks degenerate: "
                + escape(arm["degenerate"]),
                highlight=False,
            )


def _print_seeds(report: dict) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title="mean ± sd across seeds", box=box.SIMPLE, padding=(0, 1))
    for col in ("model", "EM", "F1", "turns", "EM per seed"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for name, arm in report["arms"].items():

        def cell(m: dict) -> str:
            return f"{m['mean']:.3f}" + ("" if m["sd"] is None else f" ± {m['sd']:.3f}")

        per_seed = " ".join(f"{v:.3f}" for v in arm["em"]["per_seed"])
        table.add_row(name, cell(arm["em"]), cell(arm["f1"]), cell(arm["turns"]), per_seed)
    out.print(table)


def _print_status(config_path: Path, out_dir: Path, overrides: dict) -> None:
    """The study's progress from its folder (``--status``); runs and writes nothing."""
    from rich import box
    from rich.table import Table

    from searchprime.config import load_config
    from searchprime.experiment import ExperimentConfig
    from searchprime.experiment.status import study_status

    cfg = load_config(ExperimentConfig, config_path, overrides)
    if cfg.seeds:
        folders = [(f"seed {s}", out_dir / f"seed-{s}") for s in cfg.seeds]
    else:
        folders = [("", out_dir)]
    for label, folder in folders:
        status = study_status(cfg.model_copy(update={"seeds": None}), folder)
        table = Table(title=f"{folder}{f' ({label})' if label else ''}", box=box.SIMPLE)
        for col in ("model", "from", "training", "dev rollouts", "entropy", "samples", "done"):
            table.add_column(col, justify="left" if col in ("model", "training") else "right")

        def pair(p: tuple[int, int] | None) -> str:
            return "-" if p is None else f"{p[0]}/{p[1]}"

        for m in status.models:
            table.add_row(
                m.name,
                m.parent or "-",
                m.training,
                pair(m.rollouts),
                pair(m.entropy),
                pair(m.samples),
                "✓" if m.done else "",
            )
        out.print(table)
        last = status.last_event
        if last is None:
            out.print("no stage has started in this folder", highlight=False)
            continue
        state = "running" if status.running else "not running"
        out.print(
            f"last ledger event: {last.get('stage')} {last.get('event')} at {last.get('at')} "
            f"(pid {last.get('pid')}, {last.get('host')}, commit {last.get('commit')}): {state}; "
            f"{status.work_hours:.1f} h of stage time recorded",
            highlight=False,
        )


def _sampling(samples: int | None, tasks: int | None) -> dict:
    return {"eval.samples": samples, "eval.samples_tasks": tasks}


def register(app: typer.Typer) -> None:
    """Add ``experiment`` and ``quickstart``."""

    @app.command()
    def experiment(
        config: Path = typer.Argument(..., help="Experiment YAML (see README 'Experiment file')."),
        out_dir: Path = typer.Option(Path("runs/study"), "--out", help="Output folder."),
        dev_n: int | None = typer.Option(None, help="Override eval.dev_n."),
        model: str | None = typer.Option(None, help="Override sft.model (smollm2|tiny|PATH)."),
        device: str | None = typer.Option(None, help="Override eval.device (cpu, cuda)."),
        backend: str | None = typer.Option(None, help="Override eval.backend (hf, llamacpp)."),
        samples: int | None = typer.Option(None, help="Override eval.samples (pass@k)."),
        samples_tasks: int | None = typer.Option(None, help="Override eval.samples_tasks."),
        samples_models: str | None = typer.Option(
            None,
            help="Override eval.samples_models (comma-separated): sample only these now; a "
            "model added later is sampled on the next run, its greedy eval kept.",
        ),
        entropy: bool | None = typer.Option(None, help="Override eval.entropy."),
        only: str | None = typer.Option(
            None, "--only", help="Comma-separated models to run (and those they start from)."
        ),
        status: bool = typer.Option(
            False,
            "--status",
            help="Print how far the study in --out has come (per model: training, dev "
            "rollouts, entropy, samples; the last stage event) and exit; safe beside a run.",
        ),
        carry: Path | None = typer.Option(
            None,
            "--carry",
            help="A folder for the study's results without weights (rollouts, labels, "
            "entropy, samples, step logs, ledger; gzipped): restored into --out first, kept "
            "in step after every stage, so the study goes on from it on another machine. "
            "Models are trained again only where something still to do needs them.",
        ),
    ) -> None:
        """Run the whole study from one YAML file; cached and resumable stage by stage."""
        overrides = {"eval.dev_n": dev_n, "sft.model": model, "eval.device": device}
        extra = {
            "eval.backend": backend,
            "eval.entropy": entropy,
            "eval.samples_models": samples_models.split(",") if samples_models else None,
            "only": only.split(",") if only else None,
        }
        overrides = {**overrides, **extra, **_sampling(samples, samples_tasks)}
        if status:
            _print_status(config, out_dir, overrides)
            return
        _run(config, out_dir, overrides, carry)

    @app.command()
    def quickstart(
        out_dir: Path = typer.Option(Path("runs/quickstart"), "--out", help="Output folder."),
        device: str | None = typer.Option(None, help="torch device (cpu, cuda)."),
        backend: str | None = typer.Option(None, help="Override eval.backend (hf, llamacpp)."),
        samples: int | None = typer.Option(
            None, help="pass@k: sampled rollouts per task (on a finished run: only these run)."
        ),
        samples_tasks: int | None = typer.Option(None, help="Sample on the first N dev tasks."),
        entropy: bool | None = typer.Option(
            None, help="Policy entropy per model (off in the default run: ~1 min per model)."
        ),
    ) -> None:
        """The embedded default: a sandbox world, teachers, priming and SFT of SmolLM2, eval."""
        ref = resources.files("searchprime.experiment") / QUICKSTART
        overrides = {"eval.device": device, "eval.backend": backend, "eval.entropy": entropy}
        with resources.as_file(ref) as path:
            _run(path, out_dir, {**overrides, **_sampling(samples, samples_tasks)})
