"""Shared CLI plumbing: the console, progress bars and the closing one-line summary."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
# Tables go to stdout; when it is a file or a pipe, do not squeeze them into 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[callable]:
    """Yield an ``advance(n=1)`` function driving a rich progress bar on stderr."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)

        yield advance


def summary(line: str) -> None:
    """Print the one-line summary every long verb ends with."""
    console.print(f"[green]✓[/green] {line}")
