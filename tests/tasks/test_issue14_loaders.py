"""Issue 14: FlashRAG multiple-choice golds and the ``data_source`` override of the loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchprime.errors import ConfigError, RecordError
from searchprime.tasks import load_tasks


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_flashrag_multiple_choice_golds_become_the_choice_text(tmp_path: Path) -> None:
    # FlashRAG's MMLU / ARC / OpenBookQA layout: integer golden_answers index `choices`
    path = _jsonl(
        tmp_path / "mmlu.jsonl",
        [
            {"id": "m0", "question": "2+2?", "golden_answers": [2], "choices": ["3", "5", "4"]},
            {"id": "m1", "question": "Both?", "golden_answers": [0, 3], "choices": list("abcd")},
            {"id": "m2", "question": "Bare?", "golden_answers": 1, "choices": ["no", "yes"]},
            {"id": "q0", "question": "Plain?", "golden_answers": [2], "choices": []},
            {"id": "q1", "question": "Text?", "golden_answers": ["Paris"], "choices": ["x"]},
        ],
    )
    tasks = {t.id: t for t in load_tasks(path, fmt="flashrag")}
    assert tasks["m0"].answers == ["4"]
    assert tasks["m1"].answers == ["a", "d"]
    assert tasks["m2"].answers == ["yes"]
    assert tasks["m0"].meta["choices"] == ["3", "5", "4"]  # kept for the record
    assert tasks["q0"].answers == ["2"]  # no choices: a number is a literal answer
    assert tasks["q1"].answers == ["Paris"]


def test_a_choice_index_out_of_range_is_located(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok", "question": "q?", "golden_answers": [0], "choices": ["a"]},
            {"id": "x", "question": "q?", "golden_answers": [0, 5], "choices": ["a", "b"]},
        ],
    )
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: golden_answers\.1: choice index 5"):
        load_tasks(path)


def test_data_source_fills_only_records_without_one(tmp_path: Path, shared_data: Path) -> None:
    gaia = _jsonl(
        tmp_path / "gaia.jsonl",
        [
            {"id": "g1", "question": "How many?", "answer": "3"},
            {"id": "g2", "question": "Who?", "answer": "Ada", "data_source": "hle"},
        ],
    )
    assert [t.data_source for t in load_tasks(gaia)] == [None, "hle"]
    assert [t.data_source for t in load_tasks(gaia, data_source="gaia")] == ["gaia", "hle"]
    # files that name their sources keep them, WebWalkerQA's `type` included
    bp = load_tasks(shared_data / "mhqa_sample.json", data_source="gaia")
    assert "gaia" not in {t.data_source for t in bp} and len({t.data_source for t in bp}) == 7
    ww = load_tasks(shared_data / "webwalkerqa_sample.json", data_source="gaia")
    assert {t.data_source for t in ww} == {"webwalkerqa"}
    with pytest.raises(ConfigError, match="data_source: expected a non-empty name"):
        load_tasks(gaia, data_source=" ")
