"""``prime``: read trajectories, select an arm, build samples, export them, write the card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from searchprime.data.export import FORMATS, export_samples
from searchprime.data.samples import SHAPES, Shape, build_samples
from searchprime.data.select import SelectionCard, SelectionConfig, select_trajectories
from searchprime.errors import ConfigError
from searchprime.records import Task, Trajectory, atomic_write_text, read_jsonl
from searchprime.tasks import load_tasks

__all__ = ["CARD_FILE", "prime", "read_trajectories"]

#: The selection card written beside every export.
CARD_FILE = "selection.json"


def read_trajectories(paths: Sequence[str | Path]) -> list[Trajectory]:
    """Read every trajectory of the JSONL files, in order (errors name file:line: field)."""
    trajs: list[Trajectory] = []
    for path in paths:
        if not Path(path).exists():
            raise ConfigError(f"{path}: trajectory file not found")
        trajs.extend(read_jsonl(path, Trajectory))
    return trajs


def prime(
    paths: Sequence[str | Path],
    config: SelectionConfig,
    out_dir: str | Path,
    *,
    shape: Shape = "turn",
    fmt: str = "trl",
    name: str = "searchprime",
    split: str = "train",
    tasks: Mapping[str, Task] | Sequence[str | Path] | None = None,
) -> SelectionCard:
    """Select, shape and export one arm into ``out_dir``; return (and write) its card.

    ``tasks`` (id -> task, or task files) is needed only by ``config.stratify``.
    """
    if shape not in SHAPES:
        raise ConfigError(f"shape: unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if fmt not in FORMATS:
        raise ConfigError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if tasks is not None and not isinstance(tasks, Mapping):
        tasks = {t.id: t for path in tasks for t in load_tasks(path)}
    selection = select_trajectories(read_trajectories(paths), config, tasks)
    samples = build_samples(selection.trajectories, shape) if fmt != "verl" else []
    facts = export_samples(
        fmt,
        out_dir,
        samples=samples,
        trajectories=selection.trajectories,
        shape=shape,
        name=name,
        split=split,
    )
    card = selection.card
    card.extra = {"shape": shape, **facts, "inputs": [str(p) for p in paths]}
    atomic_write_text(Path(out_dir) / CARD_FILE, card.model_dump_json(indent=2) + "\n")
    return card
