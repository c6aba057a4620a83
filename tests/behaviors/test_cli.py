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


@pytest.mark.parametrize("cmd", ["discover", "annotate", "stats", "agreement"])
def test_help(cmd: str) -> None:
    res = CliRunner().invoke(app, ["behaviors", cmd, "--help"])
    assert res.exit_code == 0
