"""``searchprime prime``: select an arm of trajectories and export it as SFT (or RL) data."""

from __future__ import annotations

from pathlib import Path

import typer

from searchprime.cli._common import out, summary


def prime(
    trajectories: list[Path] = typer.Argument(..., help="Scored, labelled trajectories JSONL."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (data + selection.json)."),
    strategy: str = typer.Option(
        "behavior",
        help="behavior | behavior-incorrect | correct | random | single:<behavior> | "
        "expr:<expression> | py:<module>:<function>.",
    ),
    n: int | None = typer.Option(None, "--n", help="Exact number of trajectories (default all)."),
    seed: int = typer.Option(0, help="Seed of the draw: same seed, same arm."),
    shape: str = typer.Option("turn", help="turn (context -> output) | trajectory."),
    fmt: str = typer.Option(
        "trl", "--format", help="trl | llamafactory-alpaca | llamafactory-sharegpt | verl."
    ),
    behaviors: str | None = typer.Option(
        None, help="Comma-separated behavior set of the 'behavior' strategies (default all four)."
    ),
    correctness: str = typer.Option("em", help="What 'correct' means: em | judge | em_or_judge."),
    keep_unanswered: bool = typer.Option(
        False, help="Keep trajectories that never answered (turn/context limit)."
    ),
    no_dedup: bool = typer.Option(False, help="Keep repeats (same task + same actions)."),
    stratify: str | None = typer.Option(
        None,
        help="Task field: data_source, a meta key (hops) or a dotted meta key (extra_info.split); "
        "scalar values only. Keeps the pool's mix of its values. Needs --tasks.",
    ),
    tasks: list[Path] | None = typer.Option(
        None, "--tasks", help="Task file(s) the trajectories were rolled out on (--stratify)."
    ),
    name: str = typer.Option("searchprime", help="Dataset name in LLaMA-Factory's dataset_info."),
    split: str = typer.Option("train", help="verl split name (file <split>.parquet)."),
) -> None:
    """Select trajectories by a strategy, shape them into samples and export them."""
    from searchprime.config import load_config
    from searchprime.data.prime import prime as run_prime
    from searchprime.data.select import SelectionConfig

    overrides = {
        "strategy": strategy,
        "n": n,
        "seed": seed,
        "correctness": correctness,
        "require_answer": not keep_unanswered,
        "dedup": not no_dedup,
        "stratify": stratify,
        "behaviors": [b.strip() for b in behaviors.split(",") if b.strip()] if behaviors else None,
    }
    config = load_config(SelectionConfig, None, overrides)
    card = run_prime(
        trajectories,
        config,
        out_dir,
        shape=shape,
        fmt=fmt,
        name=name,
        split=split,
        tasks=tasks or None,
    )
    for line in card.summary_lines():
        out.print(line, highlight=False, markup=False)
    count = card.extra.get("samples", card.extra.get("rows", 0))
    segments = card.extra.get("segments")
    what = (
        "rows"
        if fmt == "verl"
        else f"{shape} samples"
        if segments is None or segments == count
        else f"one-turn rows of {segments} trajectory samples"
    )
    summary(
        f"primed {card.counts['selected']} trajectories ({card.strategy}) -> {count} {what} "
        f"({fmt}) in {out_dir}"
    )


def register(app: typer.Typer) -> None:
    """Add ``prime`` to ``app``."""
    app.command("prime")(prime)
