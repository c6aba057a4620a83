"""JSONL writing never leaves a counted half record; reading locates every bad line."""

from __future__ import annotations

import json

import pytest

from searchprime.errors import RecordError
from searchprime.records import (
    JsonlWriter,
    Task,
    Trajectory,
    read_jsonl,
    repair_tail,
    write_jsonl,
)


def _traj(task_id: str, attempt: int = 0) -> Trajectory:
    return Trajectory(task_id=task_id, attempt=attempt, question="q?", termination="answer")


def test_writer_appends_one_line_per_record(tmp_path):
    path = tmp_path / "out" / "t.jsonl"
    with JsonlWriter(path) as w:
        w.write(_traj("a"))
        w.write(_traj("b"))
    with JsonlWriter(path) as w:
        w.write(_traj("c"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["a", "b", "c"]
    assert [t.key for t in read_jsonl(path, Trajectory)] == [("a", 0), ("b", 0), ("c", 0)]


def test_partial_tail_is_not_a_record_and_is_cut_on_reopen(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [_traj("a"), _traj("b")])
    with path.open("a") as fh:
        fh.write('{"task_id": "c", "question": "q?", "termi')  # a killed writer
    assert [t.task_id for t in read_jsonl(path, Trajectory)] == ["a", "b"]
    with JsonlWriter(path) as w:
        assert w.repaired_bytes > 0
        w.write(_traj("d"))
    assert [t.task_id for t in read_jsonl(path, Trajectory)] == ["a", "b", "d"]


def test_repair_tail_on_file_without_any_newline(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"half": ')
    assert repair_tail(path) == len('{"half": ')
    assert path.read_text() == ""


def test_bad_json_line_is_located(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "1", "question": "q", "answers": ["a"]}\n{oops}\n')
    with pytest.raises(RecordError) as info:
        list(read_jsonl(path, Task))
    assert str(info.value).startswith(f"{path}:2: <json>: not valid JSON")


def test_bad_field_is_named(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"id": "1", "question": "q", "answers": ["a"]}\n\n{"id": "2", "answers": []}\n'
    )
    with pytest.raises(RecordError) as info:
        list(read_jsonl(path, Task))
    err = info.value
    assert (err.line, err.field) == (3, "question")
    assert "Field required" in err.problem


def test_nested_field_path_is_named(tmp_path):
    path = tmp_path / "t.jsonl"
    rec = _traj("a").model_dump()
    rec["turns"] = [{"index": 0, "context": [0], "output": "x", "action": {"kind": "jump"}}]
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(RecordError) as info:
        list(read_jsonl(path, Trajectory))
    assert info.value.field == "turns.0.action.kind"


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    rec = _traj("a").model_dump()
    rec["schema_version"] = 99
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(RecordError, match="newer than this searchprime"):
        list(read_jsonl(path, Trajectory))


def test_task_int_id_becomes_string():
    assert Task(id=7, question="q", answers=["a"]).id == "7"
