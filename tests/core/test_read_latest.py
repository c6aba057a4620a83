"""Finished-file reading: the last record per key wins, skips are reported; tail repair keeps
complete records; schema_version must be a positive integer."""

from __future__ import annotations

import json
import logging

import pytest

from searchprime.agent.rollout import finished_keys
from searchprime.errors import RecordError
from searchprime.records import (
    JsonlWriter,
    ReadReport,
    Task,
    Trajectory,
    iter_json_lines,
    latest_per_key,
    read_jsonl,
    read_latest,
    repair_tail,
)


def traj(task_id: str, attempt: int = 0, answer: str = "x", termination="answer") -> Trajectory:
    return Trajectory(
        task_id=task_id,
        attempt=attempt,
        question="q?",
        final_answer=answer,
        termination=termination,
    )


def lines(*records: Trajectory) -> str:
    return "".join(r.model_dump_json() + "\n" for r in records)


def test_last_record_per_key_wins_at_the_first_position(tmp_path, caplog) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        lines(
            traj("a", answer="old-a"),
            traj("b"),
            traj("a", 1),
            traj("a", answer="retry-a"),  # same key as line 1: supersedes it
            traj("c"),
            traj("b", answer="new-b"),
            traj("a", answer="last-a"),
        )
    )
    with caplog.at_level(logging.WARNING, logger="searchprime"):
        trajs, report = read_latest(path, Trajectory)
    assert [(t.key, t.final_answer) for t in trajs] == [
        (("a", 0), "last-a"),
        (("b", 0), "new-b"),
        (("a", 1), "x"),
        (("c", 0), "x"),
    ]
    assert report.records == 4 and report.duplicates == 3 and report.truncated == 0
    assert report.duplicate_lines == {("a", 0): [1, 4, 7], ("b", 0): [2, 6]}
    (note,) = report.notes()
    assert note.startswith(f"{path}: 2 key(s) written more than once; skipped 3 earlier record")
    assert "('a', 0) at lines 1, 4, 7 -> line 7" in note
    assert [r.getMessage() for r in caplog.records] == [note]
    # read_jsonl is the same finished-file view; latest=False is the file as written
    assert [t.final_answer for t in read_jsonl(path, Trajectory)] == ["last-a", "new-b", "x", "x"]
    assert len(list(read_jsonl(path, Trajectory, latest=False))) == 7


def test_truncated_last_line_is_counted_and_said(tmp_path, caplog) -> None:
    path = tmp_path / "t.jsonl"
    full = lines(*(traj(str(i)) for i in range(20)))
    path.write_text(full[: len(full) - 30])  # a writer killed inside record 20
    with caplog.at_level(logging.WARNING, logger="searchprime"):
        trajs = list(read_jsonl(path, Trajectory))
    assert len(trajs) == 19
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:20: skipped a truncated last line (the remains of a killed writer)"
    ]
    report = ReadReport()
    assert len(list(iter_json_lines(path, report=report))) == 19
    assert report.truncated_line == 20
    with pytest.raises(RecordError, match=r":20: <json>: not valid JSON"):
        list(read_jsonl(path, Trajectory, allow_partial_tail=False))


def test_truncated_tail_cut_inside_a_utf8_character_is_a_partial_line(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    last = traj("b", answer="Zürich").model_dump_json().encode()
    path.write_bytes(lines(traj("a")).encode() + last[: last.index("ü".encode()) + 1])
    trajs, report = read_latest(path, Trajectory)
    assert [t.task_id for t in trajs] == ["a"] and report.truncated_line == 2
    assert repair_tail(path) > 0 and path.read_text() == lines(traj("a"))


def test_models_without_a_key_are_not_deduplicated(tmp_path) -> None:
    path = tmp_path / "tasks.jsonl"
    task = Task(id="1", question="q", answers=["a"]).model_dump_json()
    path.write_text(task + "\n" + task + "\n")
    tasks, report = read_latest(path, Task)
    assert len(tasks) == 2 and report.duplicates == 0 and report.notes() == []


def test_latest_per_key_on_raw_lines(tmp_path) -> None:
    """The helper a writer can use on raw dicts (e.g. to find each key's final record)."""
    path = tmp_path / "t.jsonl"
    path.write_text(lines(traj("a", termination="error"), traj("b"), traj("a")))
    rows = ((n, o) for n, o in iter_json_lines(path) if o)
    kept, report = latest_per_key(rows, key=lambda o: (o["task_id"], o["attempt"]))
    assert [(o["task_id"], o["termination"]) for o in kept] == [("a", "answer"), ("b", "answer")]
    assert report.duplicate_lines == {("a", 0): [1, 3]}


def test_complete_last_record_without_newline_is_kept_on_resume(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(lines(traj("a"), traj("b")).rstrip("\n"))  # complete, newline lost
    assert [t.task_id for t in read_jsonl(path, Trajectory)] == ["a", "b"]
    with JsonlWriter(path) as writer:
        assert writer.repaired_bytes == 0
        assert finished_keys(path) == {("a", 0), ("b", 0)}  # b is not redone
        writer.write(traj("c"))
    assert path.read_text() == lines(traj("a"), traj("b"), traj("c"))


def test_partial_tail_is_still_cut(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    body = lines(traj("a"))
    path.write_text(body + '{"task_id": "b", "question": "q?"')  # an object cut short
    assert repair_tail(path) == len('{"task_id": "b", "question": "q?"')
    assert path.read_text() == body
    path.write_text(body + "[1, 2]")  # JSON, but not a record: cut
    assert repair_tail(path) == len("[1, 2]") and path.read_text() == body
    path.write_text('{"a": 1}')  # a single complete record without any newline
    assert repair_tail(path) == 0 and path.read_text() == '{"a": 1}\n'


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        (-7, "expected a positive integer, got -7"),
        (0, "expected a positive integer, got 0"),
        ("one", "expected a positive integer, got 'one'"),
        ("1", "expected a positive integer, got '1'"),
        (True, "expected a positive integer, got True"),
        (1.0, "expected a positive integer, got 1.0"),
        (None, "expected a positive integer, got None"),
        (99, "schema_version 99 is newer than this searchprime understands (1); upgrade"),
    ],
)
def test_schema_version_must_be_a_positive_int(tmp_path, version, problem) -> None:
    path = tmp_path / "t.jsonl"
    rec = traj("a").model_dump()
    rec["schema_version"] = version
    rec["field_from_the_future"] = 1  # the version is what is reported, not this
    path.write_text(lines(traj("b")) + json.dumps(rec) + "\n")
    with pytest.raises(RecordError) as info:
        list(read_jsonl(path, Trajectory))
    assert (info.value.line, info.value.field) == (2, "schema_version")
    assert info.value.problem.startswith(problem)


def test_schema_version_one_and_absent_are_fine() -> None:
    rec = traj("a").model_dump()
    assert Trajectory.model_validate({**rec, "schema_version": 1}).schema_version == 1
    rec.pop("schema_version")
    assert Trajectory.model_validate(rec).schema_version == 1


def test_rollout_resume_keeps_a_last_record_that_lost_its_newline(tmp_path) -> None:
    """The real CLI: a sandbox teacher rollout whose last record lost its newline is resumed
    without redoing (or losing) that record."""
    from typer.testing import CliRunner

    import searchprime.world as world_mod
    from searchprime.cli.main import app
    from searchprime.search.bm25 import BM25Config, build_bm25_index

    world = tmp_path / "world"
    world_mod.build_world(world_mod.WorldConfig(entities=60, tasks=10, seed=3), world)
    index = build_bm25_index(world / "corpus.jsonl", tmp_path / "index", BM25Config(workers=1))
    out = tmp_path / "traj.jsonl"
    args = ["rollout", "--tasks", str(world / "tasks" / "train.jsonl"), "--out", str(out),
            "--teacher", "all", "--world", str(world), "--search-index", str(index),
            "--max-turns", "8", "--limit"]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "3"])
    assert first.exit_code == 0, first.output
    written = out.read_bytes()
    assert written.count(b"\n") == 3
    out.write_bytes(written[:-1])  # killed between the last record and its newline
    again = CliRunner().invoke(app, [*args, "4"])  # one more task, so the writer opens
    assert again.exit_code == 0, again.output
    now = out.read_bytes()
    assert now.startswith(written)  # the three records kept as they were, the newline back
    assert now.count(b"\n") == 4 and len(list(read_jsonl(out, Trajectory, latest=False))) == 4
