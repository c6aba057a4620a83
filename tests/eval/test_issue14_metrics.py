"""Issue 14: empty-normalising golds, regex golds (CuratedTREC), --data-source in scoring."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchprime.eval.metrics import (
    cover_em,
    exact_match,
    is_regex_source,
    normalize_answer,
    token_f1,
)
from searchprime.eval.score import score_file, score_one
from searchprime.records import Action, Trajectory, Turn, read_jsonl


@pytest.mark.parametrize("gold", ["The The", "?", "a", " the, an! "])
def test_a_gold_that_normalises_to_empty_matches_only_an_empty_answer(gold: str) -> None:
    assert normalize_answer(gold) == ""
    for empty in ("the", "An.", "!!"):
        assert (exact_match(empty, [gold]), cover_em(empty, [gold]), token_f1(empty, [gold])) == (
            1.0,
            1.0,
            1.0,
        )
    for other in ("The Who", "anything", "0"):
        assert (exact_match(other, [gold]), cover_em(other, [gold]), token_f1(other, [gold])) == (
            0.0,
            0.0,
            0.0,
        )
    # beside a real gold, the empty one neither helps nor hurts
    assert cover_em("The Who, in concert", [gold, "The Who"]) == 1.0


@given(st.text(max_size=30), st.lists(st.text(max_size=20), min_size=1, max_size=3))
def test_em_implies_cover_em_and_full_f1(pred: str, golds: list[str]) -> None:
    if exact_match(pred, golds) == 1.0:
        assert cover_em(pred, golds) == 1.0
        assert token_f1(pred, golds) == pytest.approx(1.0)


def test_curatedtrec_golds_are_regexes_as_in_flashrag() -> None:
    golds = [r"(Mount )?Vesuvius", r"19[0-9]{2}s?"]
    assert exact_match("Mount Vesuvius.", golds, regex=True) == 1.0
    assert exact_match("vesuvius", golds, regex=True) == 1.0
    assert exact_match("the 1950s", golds, regex=True) == 1.0  # normalised: "1950s"
    assert exact_match("Vesuvius erupted", golds, regex=True) == 0.0  # fullmatch for EM
    assert cover_em("Vesuvius erupted", golds, regex=True) == 1.0  # search for cover-EM
    assert exact_match("Vesuvius", golds) == 0.0  # compared literally, the pattern fails
    # an invalid pattern is compared literally; a blank one follows the empty-gold rule
    assert exact_match("c++ [", ["C++ ["], regex=True) == 1.0
    assert cover_em("anything", [""], regex=True) == 0.0
    assert exact_match("the", ["  "], regex=True) == 1.0
    assert token_f1("1950s", golds) == 0.0  # F1 is literal, as FlashRAG's


@pytest.mark.parametrize(
    ("name", "expected"),
    [("curatedtrec", True), ("CuratedTREC", True), ("curated_trec", True), ("trec", False)],
)
def test_regex_sources(name: str, expected: bool) -> None:
    assert is_regex_source(name) is expected
    assert is_regex_source(None) is False


def _traj(task_id: str, answer: str, golds: list[str], source: str | None) -> Trajectory:
    turn = Turn(index=0, context=[0], output=f"<answer>{answer}</answer>",
                action=Action(kind="answer", content=answer))  # fmt: skip
    return Trajectory(task_id=task_id, question="q?", answers=golds, data_source=source,
                      turns=[turn], final_answer=answer, termination="answer")  # fmt: skip


def test_score_one_uses_regex_for_curatedtrec_only() -> None:
    t = _traj("1", "Vesuvius", [r"(mount )?vesuvius"], "curatedtrec")
    assert (score_one(t, t.answers).em, score_one(t, t.answers).cover_em) == (1.0, 1.0)
    t.data_source = "nq"
    assert score_one(t, t.answers).em == 0.0
    assert score_one(t, t.answers, "curatedtrec").em == 1.0  # the task's source decides


def test_score_file_with_data_source_for_files_without_one(tmp_path) -> None:
    """GAIA/HLE-like tasks name no source; --data-source names it (and regex golds follow)."""
    tasks = tmp_path / "test.jsonl"
    rows = [
        {"id": "a", "question": "Volcano?", "golden_answers": [r"(mount )?vesuvius"]},
        {"id": "b", "question": "Decade?", "golden_answers": [r"19[0-9]0s"], "data_source": "x"},
        {"id": "c", "question": "Missing?", "golden_answers": ["y"]},
    ]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trajs = tmp_path / "trajs.jsonl"
    recs = [_traj("a", "Vesuvius", ["?"], None), _traj("b", "the 1950s", ["?"], None)]
    trajs.write_text("".join(r.model_dump_json() + "\n" for r in recs))

    plain = score_file(trajs, tmp_path / "plain.jsonl", tasks=tasks)
    assert set(plain.by_source) == {"unknown", "x"} and plain.overall.em == 0.0

    rep = score_file(trajs, tmp_path / "s.jsonl", tasks=tasks, data_source="curatedtrec")
    assert set(rep.by_source) == {"curatedtrec", "x"}
    assert rep.by_source["curatedtrec"].n == 2  # task a, and c that has no trajectory
    assert rep.by_source["curatedtrec"].em == 0.5
    assert rep.by_source["x"].em == 0.0  # its own source wins: literal comparison
    scored = {t.task_id: t for t in read_jsonl(tmp_path / "s.jsonl", Trajectory)}
    assert scored["a"].data_source == "curatedtrec" and scored["b"].data_source == "x"
