"""Calibration: tables from teacher runs, the CLI, and the acceptance targets (reduced)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchprime.errors import ConfigError
from searchprime.records import BEHAVIORS
from searchprime.world import WorldConfig, build_world
from searchprime.world.calibrate import (
    calibrate,
    format_report,
    priming_yield,
    rank_of_needed_page,
    summarize,
)


def test_accuracy_is_squad_normalised_exact_match(world, mixed_trajectories) -> None:
    """Calibration counts an answer right by SQuAD-normalised exact match (eval's metric)."""
    base = next(t for t in mixed_trajectories if t.policy["name"] == "all")
    gold = base.answers[0]
    answers = [f"the  {gold}!", f"{gold} Harbour", None, gold.upper()]
    trajs = [base.model_copy(update={"final_answer": a}) for a in answers]
    assert summarize({"p": trajs}, world).accuracy["p"] == 0.5  # the first and the last
    shows_all = [t.model_copy(deep=True) for t in trajs]
    for t in shows_all:
        t.turns[0].policy_meta["behaviors"] = list(BEHAVIORS)
    assert priming_yield(shows_all) == (2, 2)


def test_summary_of_mixed_runs(world, mixed_trajectories) -> None:
    runs: dict[str, list] = {}
    for traj in mixed_trajectories:
        runs.setdefault(traj.policy["name"], []).append(traj)
    rep = summarize(runs, world)
    assert rep.accuracy["all"] > rep.accuracy["plain"] + 0.3
    assert sum(rep.ranks.values()) == sum(t.n_searches for t in mixed_trajectories)
    assert rep.rank1_share <= 0.5  # no "copy Doc 1" shortcut
    ranks = rank_of_needed_page(runs["plain"][0], world)
    assert len(ranks) == runs["plain"][0].n_searches
    text = format_report(rep)
    assert "rank 1 in" in text and "plain" in text


def test_world_cli_build_and_calibrate(tmp_path: Path) -> None:
    from searchprime.cli.main import app

    runner = CliRunner()
    out = tmp_path / "w"
    res = runner.invoke(app, ["world", "build", "--seed", "3", "--out", str(out),
                              "--entities", "300", "--tasks", "200"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "corpus.jsonl").exists() and (out / "tasks" / "dev.jsonl").exists()
    runs = str(tmp_path / "runs")
    res = runner.invoke(app, ["world", "calibrate", "--world", str(out), "--n", "20",
                              "--presets", "plain,all", "--out", runs])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "needed page at rank 1" in res.output
    assert (tmp_path / "runs" / "dev-all.jsonl").exists()
    res = runner.invoke(app, ["world", "calibrate", "--world", str(out), "--presets", "genius"])
    assert isinstance(res.exception, ConfigError)


@pytest.mark.slow
def test_calibration_targets_on_a_reduced_world(tmp_path: Path) -> None:
    """The acceptance targets of bench/world.py on 4k entities, 300 dev tasks, 2,000 runs."""
    build_world(WorldConfig(seed=0, entities=4000, tasks=8000), tmp_path)
    rep, _ = calibrate(tmp_path, n=300, yield_runs=2000)
    acc = rep.accuracy
    assert acc["all"] >= 0.90 and acc["plain"] <= 0.60, acc
    gain = {
        ("verify", "conflict"),
        ("authority", "conflict"),
        ("adaptive", "alias"),
        ("adaptive", "overspecific"),
        ("recovery", "distractor"),
    }
    for preset, trap in gain:
        assert rep.by_trap[preset][trap] >= rep.by_trap["plain"][trap] + 0.15, (preset, trap)
    assert rep.rank1_share <= 0.5
    # 2,000 of the 5,000 allowed runs: scaled targets 300 -> 120 right, 150 -> 60 wrong
    assert rep.all_four_right >= 120 and rep.all_four_wrong >= 60, rep
