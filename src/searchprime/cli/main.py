"""The ``searchprime`` command: one verb per pipeline stage (see README 'CLI tour')."""

from __future__ import annotations

import typer

from searchprime.cli._common import console
from searchprime.errors import SearchPrimeError

app = typer.Typer(
    name="searchprime",
    help="Agentic search post-training by Behavior Priming.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Each stage's commands live in their own module; each exposes register(app).
    from searchprime.cli import (
        behaviors_cmd,
        experiment_cmd,
        index_cmd,
        model_cmd,
        prime_cmd,
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
    ):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry: user-fixable errors print one line, exit code 2."""
    try:
        app()
    except SearchPrimeError as exc:
        console.print("[red]error:[/red]", end=" ")
        console.print(str(exc), highlight=False, markup=False)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        console.print("interrupted; finished records are saved and a rerun resumes")
        raise SystemExit(130) from None
