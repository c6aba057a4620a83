"""The text boundary (records/sanitize.py), the error-text formatter and secret masking."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from searchprime import secrets
from searchprime.agent.actions import parse_action
from searchprime.records import Action, SearchHit, Trajectory
from searchprime.records.sanitize import (
    ERROR_CHARS,
    REPLACEMENT,
    TextBoundary,
    clean_text,
    format_error,
    one_line,
)


def new_key() -> str:
    key = f"sk-test-{uuid.uuid4().hex}"
    secrets.register(key)
    return key


# ------------------------------------------------------------------ lone surrogates
@pytest.mark.parametrize(
    ("raw", "clean", "n"),
    [
        ("plain ascii", "plain ascii", 0),
        ("accents é and 漢字 and 😀", "accents é and 漢字 and 😀", 0),
        ("lone \ud800 high", f"lone {REPLACEMENT} high", 1),
        ("lone \udfff low at end\udc00", f"lone {REPLACEMENT} low at end{REPLACEMENT}", 2),
        ("a split pair \ud83d\ude00", f"a split pair {REPLACEMENT}{REPLACEMENT}", 2),
        ("", "", 0),
    ],
)
def test_clean_text_replaces_and_counts_lone_surrogates(raw: str, clean: str, n: int) -> None:
    assert clean_text(raw) == (clean, n)
    clean_text(raw)[0].encode("utf-8")  # always writable


def test_a_cleaned_record_can_be_written_the_raw_one_cannot() -> None:
    raw = Action(kind="answer", content="Paris \ud800")
    with pytest.raises(ValueError):
        raw.model_dump_json()
    boundary = TextBoundary()
    clean = boundary.model(raw)
    assert json.loads(clean.model_dump_json())["content"] == f"Paris {REPLACEMENT}"
    assert boundary.replaced == 1
    untouched = Action(kind="answer", content="Paris")
    assert boundary.model(untouched) is untouched and boundary.replaced == 1


def test_value_makes_any_backend_note_json_writable() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd \udcff object"

    boundary = TextBoundary()
    notes = {
        "ok": [1, 2.5, True, None, "x"],
        "nan": float("nan"),
        "np": np.float32(0.5),
        "npint": np.int64(7),
        ("tuple", "key"): ("a\ud800", 3),
        "model": SearchHit(doc_id="d", title="t\ud801"),
        "obj": Odd(),
    }
    out = boundary.value(notes)
    text = json.dumps(out, ensure_ascii=False)
    text.encode("utf-8")
    assert out["nan"] is None and out["np"] == 0.5 and out["npint"] == 7
    assert out["('tuple', 'key')"] == [f"a{REPLACEMENT}", 3]
    assert out["model"]["title"] == f"t{REPLACEMENT}" and out["obj"] == f"odd {REPLACEMENT} object"
    assert out["ok"] == [1, 2.5, True, None, "x"] and not math.isnan(out["np"])
    assert boundary.replaced == 3


def test_a_whole_trajectory_with_hostile_texts_round_trips() -> None:
    boundary = TextBoundary()
    traj = Trajectory(
        task_id="t",
        question=boundary.text("q \ud800"),
        termination="answer",
        final_answer=boundary.text("\udc00"),
        meta=boundary.value({"note": "\ud800"}),
    )
    assert Trajectory.model_validate_json(traj.model_dump_json()).final_answer == REPLACEMENT
    assert boundary.replaced == 3


# ------------------------------------------------------------------ error texts
class _Shape(BaseModel):
    text: str
    tokens: int


def test_validation_error_is_one_line_not_a_dump() -> None:
    with pytest.raises(ValidationError) as info:
        _Shape.model_validate({"text": ["a", "list"], "tokens": "many"})
    line = format_error(info.value)
    assert line == "ValidationError: _Shape.text: Input should be a valid string (+1 more)"
    assert "\n" not in line and "input_value" not in line and "https://" not in line


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (KeyError("choices"), "KeyError: 'choices'"),
        (AttributeError("'str' object has no attribute 'get'"),
         "AttributeError: 'str' object has no attribute 'get'"),
        (RuntimeError(), "RuntimeError"),
        (ValueError("first line\n  Traceback (most recent call last):\n\tmore"),
         "ValueError: first line Traceback (most recent call last): more"),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
         "UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800' in position 0: "
         "surrogates not allowed"),
    ],
)  # fmt: skip
def test_format_error_is_type_colon_message(exc: BaseException, expected: str) -> None:
    assert format_error(exc) == expected


def test_format_error_is_bounded_and_survives_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert format_error(Broken()) == "Broken"
    long = format_error(ValueError("x" * 5000))
    assert len(long) == ERROR_CHARS and long.endswith("…")
    assert len(format_error(ValueError("y" * 50), limit=20)) == 20


def test_error_text_masks_the_key_before_cutting() -> None:
    key = new_key()
    for pad in range(370, 400, 3):  # the cut at 400 falls before, inside and after the key
        line = format_error(ValueError("p" * pad + f" Bearer {key} tail"))
        assert not any(key[i : i + 8] in line for i in range(len(key) - 7)), pad
    assert one_line(f"a\n{key}\nb") == "a *** b"


# ------------------------------------------------------------------ secrets
def test_mask_hides_the_key_and_every_8_char_piece_of_it() -> None:
    key = new_key()
    text = f"whole {key}; head {key[:8]}; tail {key[-9:]}; middle {key[5:20]}; short {key[:7]}"
    masked = secrets.mask(text)
    assert masked == f"whole ***; head ***; tail ***; middle ***; short {key[:7]}"
    assert secrets.mask("nothing secret here") == "nothing secret here"
    assert secrets.mask(json.dumps({"auth": f"Bearer {key}"})) == '{"auth": "Bearer ***"}'


def test_mask_escaped_forms_and_tiny_secrets() -> None:
    key = f"ab/cd+ef/{uuid.uuid4().hex[:12]}"
    secrets.register(key)
    assert key not in secrets.mask(json.dumps({"k": key}).replace("/", "\\/"))
    assert "%2F" not in secrets.mask(f"?key={key.replace('/', '%2F').replace('+', '%2B')}")
    secrets.register("k")  # too short to be a secret: masking it would garble every text
    assert secrets.mask("kk") == "kk"


# ------------------------------------------------------------------ fuzz: any reply is writable
_ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=())
_TAGGY = st.sampled_from(["<think>", "</think>", "<search>", "</search>", "<answer>", "</answer>",
                          "\ud800", "\udfff", "\x00", "\\u", '"', "\n"])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(_ANY_CHAR, max_size=12), _TAGGY), max_size=12))
def test_any_cleaned_reply_parses_to_a_writable_action(parts: list[str]) -> None:
    boundary = TextBoundary()
    action = parse_action(boundary.text("".join(parts)), "explicit")
    line = action.model_dump_json()
    line.encode("utf-8")
    assert Action.model_validate_json(line) == action
