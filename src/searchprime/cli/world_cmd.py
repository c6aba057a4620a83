"""CLI commands (filled in by its stage)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to ``app``."""
