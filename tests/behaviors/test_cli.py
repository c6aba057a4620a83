"""`searchprime score` and `searchprime behaviors ...` through the real CLI app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from searchprime.cli.main import app
from searchprime.errors import ConfigError
from searchprime.records import BEHAVIORS, write_jsonl

IV, AE, AS, ER = BEHAVIORS


def test_score_stats_agreement_cli(tmp_path, traj_factory) -> None:
    trajs = [
        traj_factory(
            f"t{i}", correct=i < 6, shown={IV} if i < 5 else {AS}, truth={IV} if i < 4 else set()
        )
        for i in range(10)
    ]
    for t in trajs:
        t.data_source = "sandbox"
    src = tmp_path / "run.jsonl"
    write_jsonl(src, trajs)
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, ["score", str(src), "--out", str(tmp_path / "scored.jsonl")])
    assert res.exit_code == 0, res.output
    assert "sandbox" in res.output and "0.600" in res.output  # EM 6/10 in the table

    res = runner.invoke(
        app,
        [
            "behaviors",
            "stats",
            str(tmp_path / "scored.jsonl"),
            str(src),
            "--name",
            "scored",
            "--name",
            "raw",
            "--out-dir",
            str(tmp_path / "stats"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "5/10 = 0.500" in res.output and "5/6 = 0.833" in res.output  # IV overall, correct
    report = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert [r["run"] for r in report["runs"]] == ["scored", "raw"]
    assert (tmp_path / "stats" / "rates_by_run.png").stat().st_size > 0
    assert (tmp_path / "stats" / "behavior_vs_accuracy.png").stat().st_size > 0

    res = runner.invoke(
        app, ["behaviors", "agreement", str(src), "--out", str(tmp_path / "a.json")]
    )
    assert res.exit_code == 0, res.output
    iv = json.loads((tmp_path / "a.json").read_text())["behaviors"][IV]
    assert (iv["tp"], iv["fp"], iv["fn"]) == (4, 1, 0)


def test_cli_errors_are_config_errors(tmp_path, traj_factory) -> None:
    src = tmp_path / "run.jsonl"
    write_jsonl(src, [traj_factory("a")])
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["behaviors", "annotate", str(src), "--out", str(tmp_path / "o.jsonl"), "--judge", "vibes"],
    )
    assert isinstance(res.exception, ConfigError)
    res = runner.invoke(
        app,
        ["behaviors", "annotate", str(src), "--out", str(tmp_path / "o.jsonl"), "--judge", "rules"],
    )
    assert isinstance(res.exception, ConfigError) and "--world" in str(res.exception)
    res = runner.invoke(
        app, ["behaviors", "annotate", str(src), "--out", str(tmp_path / "o.jsonl")]
    )
    assert isinstance(res.exception, ConfigError) and "--llm-url" in str(res.exception)


def test_bad_record_names_file_and_line(tmp_path) -> None:
    from searchprime.errors import RecordError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x", "question": "q", "termination": "answer"}\n{"task_id": 3}\n')
    res = CliRunner().invoke(app, ["score", str(bad), "--out", str(tmp_path / "o.jsonl")])
    assert isinstance(res.exception, RecordError)
    assert str(res.exception).startswith(f"{bad}:2:")


@pytest.mark.parametrize(
    ("cmd", "args", "options"),
    [
        ("discover", "{first} [second]", ["--out", "--llm-url", "--max-behaviors", "--cache"]),
        ("annotate", "{trajectories}", ["--out", "--judge", "--world", "--llm-url", "--limit"]),
        ("stats", "{files}...", ["--name", "--out-dir", "--correctness", "--group-by"]),
        ("agreement", "{labelled}", ["--out"]),
    ],
)
def test_help(cmd: str, args: str, options: list[str]) -> None:
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["behaviors", cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert f"Usage: searchprime behaviors {cmd} [OPTIONS] {args}" in res.output
    shown = {w for w in res.output.split() if w.startswith("--")}
    assert set(options) <= shown, (cmd, shown)


def test_annotate_rules_cli_on_a_tiny_world(tmp_path) -> None:
    from searchprime.agent.loop import AgentConfig
    from searchprime.agent.rollout import run_rollout
    from searchprime.records import Task, Trajectory, read_jsonl
    from searchprime.search.bm25 import BM25Search, build_bm25_index
    from searchprime.world import Teacher, WorldConfig, build_world, load_world

    wdir = tmp_path / "world"
    build_world(WorldConfig(seed=1, entities=120, tasks=30), wdir)
    build_bm25_index(wdir / "corpus.jsonl", tmp_path / "index")
    tasks = list(read_jsonl(wdir / "tasks" / "train.jsonl", Task))[:12]
    trajs = tmp_path / "t.jsonl"
    search = BM25Search.load(tmp_path / "index")
    run_rollout(tasks, Teacher(load_world(wdir), "all"), search, AgentConfig(), trajs)
    out = tmp_path / "labelled.jsonl"
    args = ["behaviors", "annotate", str(trajs), "--out", str(out), "--judge", "rules"]
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, [*args, "--world", str(wdir)])
    assert res.exit_code == 0, res.output
    assert "labelled 12 trajectories (0 already done" in res.output
    res = runner.invoke(app, [*args, "--world", str(wdir)])  # resume: nothing left to do
    assert "labelled 0 trajectories (12 already done" in res.output
    labelled = list(read_jsonl(out, Trajectory))
    assert len(labelled) == 12 and all(t.labels.annotator.startswith("rules") for t in labelled)
    res = runner.invoke(app, ["behaviors", "agreement", str(out)])
    assert res.exit_code == 0 and "agreement over 12 trajectories" in res.output
    # the action-grounded judge on the same trajectories: its own labeller, the same denominator
    grounded = tmp_path / "grounded.jsonl"
    res = runner.invoke(
        app,
        ["behaviors", "annotate", str(trajs), "--out", str(grounded), "--judge", "grounded",
         "--world", str(wdir)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    g = list(read_jsonl(grounded, Trajectory))
    assert len(g) == 12 and all(t.labels.annotator.startswith("grounded") for t in g)
    res = runner.invoke(app, ["behaviors", "annotate", str(trajs), "--out", str(grounded),
                              "--judge", "grounded"])  # fmt: skip
    assert isinstance(res.exception, ConfigError)
    assert "the grounded judge needs the sandbox world" in str(res.exception)
