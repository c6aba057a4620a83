"""`searchprime rollout` end to end: real HTTP policy or sandbox teacher, real BM25 index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchprime.cli.main import app
from searchprime.errors import ResumeError
from searchprime.records import Trajectory, read_jsonl
from tests.agent.helpers import http_responder, make_tasks
from tests.llm.fake_openai import FakeOpenAIServer


def write_tasks(path: Path, n: int) -> Path:
    path.write_text("".join(t.model_dump_json() + "\n" for t in make_tasks(n)))
    return path


def test_rollout_cli_http_policy_bm25_resume(bm25_index: Path, tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 6)
    out = tmp_path / "out" / "traj.jsonl"
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text("agent:\n  topk: 2\n  search_reminder_after: 2\nconcurrency: 3\n")
    runner = CliRunner()
    with FakeOpenAIServer(http_responder, fail_rate=0.2, tokenize=False) as srv:
        args = ["rollout", "--tasks", str(tasks), "--out", str(out), "--config", str(cfg),
                "--policy-url", srv.base_url, "--search-index", str(bm25_index),
                "--attempts", "2", "--max-turns", "4"]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "12 trajectories written to" in result.output and str(out) in result.output
        trajs = list(read_jsonl(out, Trajectory))
        assert len({t.key for t in trajs}) == 12
        assert all(t.agent["topk"] == 2 and t.agent["max_turns"] == 4 for t in trajs)
        assert all(len(t.turns[0].hits) <= 2 for t in trajs)
        assert trajs[0].policy["kind"] == "openai" and trajs[0].search["kind"] == "bm25"
        again = runner.invoke(app, args)
        assert again.exit_code == 0, again.output
        assert "0 trajectories written" in again.output and "12 already done" in again.output
        other = runner.invoke(app, [*args[:-1], "5"])  # --max-turns 5: other agent settings
        assert isinstance(other.exception, ResumeError) and "max_turns" in str(other.exception)
        assert "rollout ━" not in other.output  # refused before any work started


def test_rollout_cli_errors_are_one_line(tmp_path: Path, bm25_index: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2)
    env = {**os.environ, "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", "from searchprime.cli.main import main; main()", "rollout"]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env)

    r = cli("--tasks", str(tasks), "--out", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and "no policy" in r.stderr and "Traceback" not in r.stderr
    r = cli("--tasks", str(tasks), "--out", str(tmp_path / "o.jsonl"),
            "--policy-url", "http://127.0.0.1:9/v1", "--teacher", "all")  # fmt: skip
    assert r.returncode == 2 and "choose one policy" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  max_turn: 3\n")
    r = cli("--tasks", str(tasks), "--out", str(tmp_path / "o.jsonl"), "--config", str(bad))
    assert r.returncode == 2 and "agent.max_turn" in r.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"}\n')
    r = cli("--tasks", str(broken), "--out", str(tmp_path / "o.jsonl"),
            "--policy-url", "http://127.0.0.1:9/v1", "--search-index", str(bm25_index))  # fmt: skip
    assert r.returncode == 2 and "broken.jsonl:2: answer: missing" in r.stderr


def test_rollout_cli_teacher_in_sandbox_world(tmp_path: Path) -> None:
    import searchprime.world as world_mod
    from searchprime.search.bm25 import BM25Config, build_bm25_index

    world_dir = tmp_path / "world"
    world_mod.build_world(world_mod.WorldConfig(entities=120, tasks=40, seed=1), world_dir)
    index = build_bm25_index(world_dir / "corpus.jsonl", tmp_path / "index", BM25Config(workers=1))
    out = tmp_path / "traj.jsonl"
    args = ["rollout", "--tasks", str(world_dir / "tasks" / "train.jsonl"), "--out", str(out),
            "--teacher", "all", "--world", str(world_dir), "--search-index", str(index),
            "--limit", "8", "--max-turns", "12"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    trajs = list(read_jsonl(out, Trajectory))
    assert len(trajs) == 8 and all(t.termination == "answer" for t in trajs)
    assert all(t.policy["kind"] == "teacher" for t in trajs)
    # the teacher logged the behaviors it showed; the loop kept them per turn
    assert all("behaviors" in turn.policy_meta for t in trajs for turn in t.turns)
    shown = json.dumps([turn.policy_meta for t in trajs for turn in t.turns])
    assert "information_verification" in shown


@pytest.mark.slow
def test_rollout_cli_local_policy_model(bm25_index: Path, tmp_path: Path) -> None:
    """--policy-model: a tiny random model loaded in-process (plumbing only: it writes junk)."""
    from searchprime.train.models import init_tiny

    model = init_tiny(tmp_path / "tiny")
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2)
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text("agent:\n  max_turns: 2\n  sampling:\n    max_tokens: 8\n")
    out = tmp_path / "traj.jsonl"
    args = ["rollout", "--tasks", str(tasks), "--out", str(out), "--config", str(cfg),
            "--policy-model", str(model), "--search-index", str(bm25_index)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    trajs = list(read_jsonl(out, Trajectory))
    assert len(trajs) == 2 and all(t.policy["kind"] == "local" for t in trajs)
    assert all(len(t.turns) == 2 and t.termination == "max_turns" for t in trajs)
    assert all(turn.output_tokens and turn.output_tokens <= 8 for t in trajs for turn in t.turns)


def test_rollout_cli_data_source_names_tasks_without_one(bm25_index: Path, tmp_path: Path) -> None:
    tasks = tmp_path / "hle.jsonl"  # an HLE/GAIA export: no data_source field
    tasks.write_text(
        "".join(
            json.dumps({"id": t.id, "question": t.question, "answer": t.answers[0]}) + "\n"
            for t in make_tasks(2)
        )
    )
    runner = CliRunner()
    with FakeOpenAIServer(http_responder, tokenize=False) as srv:
        for name, extra in (("plain", []), ("named", ["--data-source", "hle"])):
            out = tmp_path / f"{name}.jsonl"
            args = ["rollout", "--tasks", str(tasks), "--out", str(out), "--policy-url",
                    srv.base_url, "--search-index", str(bm25_index), "--max-turns", "2",
                    *extra]  # fmt: skip
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
    assert {t.data_source for t in read_jsonl(tmp_path / "plain.jsonl", Trajectory)} == {None}
    assert {t.data_source for t in read_jsonl(tmp_path / "named.jsonl", Trajectory)} == {"hle"}
