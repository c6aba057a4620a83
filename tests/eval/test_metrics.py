"""Answer metrics: hand-checked cases, real sample records, and invariants."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchprime.eval.metrics import (
    cover_em,
    exact_match,
    normalize_answer,
    split_golds,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  A   cat,  an  apple;  the end. ", "cat apple end"),
        ("The-end", "theend"),  # punctuation goes before articles, as in SQuAD
        ("Anakin   Skywalker\n", "anakin skywalker"),
        ("theatre", "theatre"),  # articles only as whole words
        ("Pyotr Il'yich Tchaikovsky", "pyotr ilyich tchaikovsky"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_cover_f1_hand_checked() -> None:
    golds = ["February 25 , 2004", "2004"]
    assert exact_match("2004", golds) == 1.0
    assert exact_match("in 2004", golds) == 0.0
    pred = "It came out on February 25, 2004."
    assert cover_em(pred, golds) == 1.0
    assert exact_match(pred, golds) == 0.0
    # "it came out on february 25 2004": 7 tokens; vs gold 1: P=3/7, R=1 -> F1=0.6;
    # vs gold 2: P=1/7, R=1 -> 0.25; best = 0.6
    assert token_f1(pred, golds) == pytest.approx(0.6)
    assert token_f1("nothing shared", golds) == 0.0


def test_yes_no_rule_of_flashrag() -> None:
    assert token_f1("yes", ["no"]) == 0.0
    assert token_f1("no it was not", ["no"]) == 0.0  # gold special, no exact match
    assert token_f1("yes", ["Yes."]) == 1.0


def test_none_and_empty_predictions() -> None:
    assert exact_match(None, ["a"]) == 0.0
    assert cover_em(None, ["x"]) == 0.0
    assert token_f1(None, ["x"]) == 0.0
    assert cover_em("anything", [""]) == 0.0  # an empty gold never covers
    assert token_f1("x", []) == 0.0


def _record(shared_data, name: str, rid: int) -> dict:
    data = json.loads((shared_data / name).read_text(encoding="utf-8"))
    return next(r for r in data if r["id"] == rid)


def test_mhqa_answer_split_golds(shared_data) -> None:
    rec = _record(shared_data, "mhqa_sample.json", 2905)  # NQ: passion of the christ
    golds = split_golds(rec["answer"])
    assert golds == ["February 25 , 2004", "2004"]
    assert exact_match("February 25, 2004", rec["answer"]) == 1.0  # string golds split too

    rec = _record(shared_data, "mhqa_sample.json", 574)  # PopQA: 13 aliases
    golds = split_golds(rec["answer"])
    assert len(golds) == 13
    assert exact_match("Tchaikovsky", golds) == 1.0
    assert exact_match("Pyotr Ilyich Tchaikovsky", golds) == 1.0
    assert exact_match("Mozart", golds) == 0.0
    # "composer was tchaikovsky": best gold "Tchaikovsky" -> P=1/3, R=1 -> F1 = 0.5
    assert token_f1("The composer was Tchaikovsky", golds) == pytest.approx(0.5)

    rec = _record(shared_data, "mhqa_sample.json", 2202)  # TriviaQA: CD in Roman numerals
    assert exact_match("four hundred", rec["answer"]) == 1.0
    assert cover_em("CD is 400.", rec["answer"]) == 1.0

    rec = _record(shared_data, "mhqa_sample.json", 1911)
    assert exact_match("Central and South regions", rec["answer"]) == 1.0


def test_webwalker_free_form_answers(shared_data) -> None:
    rec = _record(shared_data, "webwalkerqa_sample.json", 485)
    pred = "Tipsy Unicorn; take the Sentosa Express monorail to Beach Station"
    # A correct short answer to a sentence-long gold: EM and cover-EM are useless ...
    assert exact_match(pred, rec["answer"]) == 0.0
    assert cover_em(pred, rec["answer"]) == 0.0
    # ... and F1 is partial: 9 pred tokens all in the 31-token gold -> 2*(9/31)/(40/31) = 0.45
    assert token_f1(pred, rec["answer"]) == pytest.approx(0.45)
    rec = _record(shared_data, "webwalkerqa_sample.json", 60)
    assert exact_match("Volker Markl.", rec["answer"]) == 1.0
    rec = _record(shared_data, "webwalkerqa_sample.json", 593)  # Chinese, no spaces
    assert exact_match(rec["answer"], rec["answer"]) == 1.0
    assert token_f1("优秀网络游戏", rec["answer"]) == 0.0  # one whitespace token each


@given(st.text(max_size=30), st.lists(st.text(max_size=20), min_size=1, max_size=3))
def test_metric_invariants(pred: str, golds: list[str]) -> None:
    em, cov, f1 = exact_match(pred, golds), cover_em(pred, golds), token_f1(pred, golds)
    assert 0.0 <= f1 <= 1.0
    if em == 1.0 and normalize_answer(pred):
        assert cov == 1.0
        assert f1 == pytest.approx(1.0)
