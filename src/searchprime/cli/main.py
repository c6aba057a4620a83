"""The ``searchprime`` command: one verb per pipeline stage (see README 'CLI tour')."""

from __future__ import annotations

import logging

import typer

from searchprime import secrets
from searchprime.cli._common import console
from searchprime.errors import SearchPrimeError

app = typer.Typer(
    name="searchprime",
    help="Agentic search post-training by Behavior Priming.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class _ConsoleWarnings(logging.Handler):
    """Print searchprime's logged warnings (e.g. lines a reader skipped) as ``warning: ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print("[yellow]warning:[/yellow]", end=" ")
        console.print(
            secrets.mask(record.getMessage()), highlight=False, markup=False, soft_wrap=True
        )


@app.callback()
def _setup() -> None:
    logger = logging.getLogger("searchprime")
    if not any(isinstance(h, _ConsoleWarnings) for h in logger.handlers):
        logger.addHandler(_ConsoleWarnings(logging.WARNING))
        logger.setLevel(logging.WARNING)


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined)."""
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def _register() -> None:
    # Each stage's commands live in their own module; each exposes register(app).
    from searchprime.cli import (
        behaviors_cmd,
        experiment_cmd,
        index_cmd,
        model_cmd,
        prime_cmd,
        report_cmd,
        rollout_cmd,
        score_cmd,
        serve_model_cmd,
        train_cmd,
        world_cmd,
    )

    for module in (
        world_cmd,
        index_cmd,
        rollout_cmd,
        score_cmd,
        behaviors_cmd,
        prime_cmd,
        model_cmd,
        train_cmd,
        serve_model_cmd,
        experiment_cmd,
        report_cmd,
    ):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry: user-fixable errors print one line, exit code 2."""
    try:
        app()
    except SearchPrimeError as exc:
        console.print("[red]error:[/red]", end=" ")
        console.print(secrets.mask(_one_line(exc)), highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        console.print("interrupted; finished records are saved and a rerun resumes")
        raise SystemExit(130) from None
