"""``searchprime world build`` and ``searchprime world calibrate``: the sandbox world."""

from __future__ import annotations

from pathlib import Path

import typer

from searchprime.cli._common import console, summary
from searchprime.config import load_config
from searchprime.errors import ConfigError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``world`` sub-app to ``app``."""
    world_app = typer.Typer(
        name="world",
        help="The sandbox world: generated corpus, multi-hop tasks, scripted teachers.",
        no_args_is_help=True,
    )

    @world_app.command("build")
    def build_cmd(
        out_dir: Path = typer.Option(..., "--out", help="Folder to write the world into."),
        seed: int | None = typer.Option(None, "--seed", help="Seed (same seed: same files)."),
        entities: int | None = typer.Option(None, "--entities", help="Number of entities."),
        tasks: int | None = typer.Option(None, "--tasks", help="Number of tasks (all splits)."),
        combo_rate: float | None = typer.Option(
            None, "--combo-rate", help="Share of tasks forced to carry three traps."
        ),
        conflict_rate: float | None = typer.Option(
            None, "--conflict-rate", help="Share of facts with a wrong low-authority page."
        ),
        twin_rate: float | None = typer.Option(
            None, "--twin-rate", help="Share of persons/orgs/works with a near-duplicate."
        ),
        alias_rate: float | None = typer.Option(
            None, "--alias-rate", help="Share of entities with an alias."
        ),
        config: Path | None = typer.Option(None, "--config", help="YAML WorldConfig."),
    ) -> None:
        """Generate a world: corpus.jsonl, tasks/{train,dev,test}.jsonl, facts, world.json."""
        from searchprime.world import WorldConfig, build_world

        overrides = {
            "seed": seed,
            "entities": entities,
            "tasks": tasks,
            "combo_rate": combo_rate,
            "conflict_rate": conflict_rate,
            "twin_rate": twin_rate,
            "alias_rate": alias_rate,
        }
        cfg = load_config(WorldConfig, config, overrides)
        with console.status("generating the world"):
            card = build_world(cfg, out_dir)
        counts = card["counts"]
        rates = card["trap_rates"].get("train", {})
        typer.echo("trap rates (train): " + ", ".join(f"{k} {v:.0%}" for k, v in rates.items()))
        summary(
            f"world seed {cfg.seed}: {counts['entities']} entities, {counts['documents']} pages, "
            f"{sum(counts['tasks'].values())} tasks written to {out_dir} "
            f"in {card['build_seconds']:.1f} s"
        )

    @world_app.command("calibrate")
    def calibrate_cmd(
        world: Path = typer.Option(..., "--world", help="World folder (from `world build`)."),
        n: int = typer.Option(500, "--n", min=1, help="Tasks of the split per preset."),
        presets: str = typer.Option(
            "plain,all,verify,authority,adaptive,recovery",
            "--presets",
            help="Comma-separated teacher presets.",
        ),
        split: str = typer.Option("dev", "--split", help="Task split to run on."),
        yield_runs: int = typer.Option(
            0, "--yield-runs", min=0, help="All-behaviors runs on train to count priming data."
        ),
        out_dir: Path | None = typer.Option(
            None, "--out", help="Keep the trajectories here (default: a temporary folder)."
        ),
        index: Path | None = typer.Option(
            None, "--index", help="BM25 index folder (default: WORLD/index, built if missing)."
        ),
        concurrency: int = typer.Option(16, "--concurrency", min=1, help="Agents in flight."),
    ) -> None:
        """Run teacher presets through the agent loop and BM25 top-3; print the table."""
        from searchprime.world.calibrate import calibrate, format_report
        from searchprime.world.teachers import TEACHER_PRESETS

        names = [p.strip() for p in presets.split(",") if p.strip()]
        unknown = [p for p in names if p not in TEACHER_PRESETS]
        if unknown or not names:
            raise ConfigError(
                f"--presets: unknown {unknown or names}; known: {', '.join(TEACHER_PRESETS)}"
            )
        with console.status("running teachers"):
            rep, _ = calibrate(
                world,
                n=n,
                presets=names,
                split=split,
                yield_runs=yield_runs,
                out_dir=out_dir,
                index_dir=index,
                concurrency=concurrency,
            )
        typer.echo(format_report(rep))
        acc = ", ".join(f"{k} {v:.1%}" for k, v in rep.accuracy.items())
        summary(f"calibrated {len(names)} presets on {rep.n_tasks} {split} tasks: {acc}")

    app.add_typer(world_app, name="world")
