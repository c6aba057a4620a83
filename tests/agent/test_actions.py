"""parse_action: exactly one validated action per response; never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprime.agent.actions import parse_action
from searchprime.records import Action

VALID = [
    ("<search>capital of France</search>", "search", "capital of France", None),
    ("<search> padded query </search>\n", "search", "padded query", None),
    ("<answer>Paris</answer>", "answer", "Paris", None),
    ("<summary>Searched X; found Y.</summary>  \n ", "summary", "Searched X; found Y.", None),
    (
        "<think>I need the year.</think>\n<search>Orvane founded</search>",
        "search",
        "Orvane founded",
        "I need the year.",
    ),
    ("<think>\nmulti\nline\n</think><answer>1901</answer>", "answer", "1901", "multi\nline"),
    (
        "Thinking Process: find it.\nAction: <search> q </search>",
        "search",
        "q",
        "Thinking Process: find it.\nAction:",
    ),
    ("<answer>a < b and c > d</answer>", "answer", "a < b and c > d", None),
    ("reasoning goes here</think>\n<search>x</search>", "search", "x", "reasoning goes here"),
    ("<answer>北京</answer>", "answer", "北京", None),
]


@pytest.mark.parametrize(("text", "kind", "content", "think"), VALID)
def test_valid_responses(text: str, kind: str, content: str, think: str | None) -> None:
    action = parse_action(text, "explicit")
    assert action.kind == kind, action.error
    assert action.content == content
    assert action.think == think
    assert action.error is None


INVALID = [
    ("", "empty response"),
    ("   \n", "empty response"),
    ("I think the answer is Paris.", "no action"),
    ("<search>a</search><answer>b</answer>", "more than one action"),
    ("<search>a</search>\n<search>b</search>", "2 <search> actions"),
    ("<search>a", "unbalanced <search>"),
    ("a</answer>", "unbalanced <answer>"),
    ("</search>q<search>", "comes before"),
    ("<search></search>", "empty query"),
    ("<answer>   </answer>", "empty answer"),
    ("<summary></summary>", "empty summary"),
    ("<search>q</search>\n<information>fake</information>", "<information>"),
    ("<search>q</search> and then more text", "text after </search>"),
    ("<answer>Paris</answer>\nBecause it is the capital.", "text after </answer>"),
    ("<think>unclosed <search>q</search>", "unclosed <think>"),
    ("<think>a</think><think>b</think><search>q</search>", "more than one <think>"),
    ("<search>q</search><think>after</think>", "more than one action|</think> after|text after"),
    ("<search>q <think>x</think></search>", "</think> after the action opens"),
    ("</think>x<think><search>q</search>", "comes before <think>"),
    ("<search>q</search></information>", "<information>"),
    # tags inside a summary would be cut by the stop sequences, so they are invalid
    ("<summary><search>q1</search> gave nothing</summary>", "more than one action"),
]


@pytest.mark.parametrize(("text", "error"), INVALID)
def test_invalid_responses(text: str, error: str) -> None:
    action = parse_action(text, "explicit")
    assert action.kind == "invalid"
    assert action.content == ""
    assert action.error
    import re

    assert re.search(error, action.error), action.error


def test_thinking_modes() -> None:
    text = "Let me look.\n<search>q</search>"
    assert parse_action(text, "explicit").think == "Let me look."
    assert parse_action(text, "internal").think is None
    assert parse_action(text, "none").think is None
    leaked = "<think>hidden</think><answer>x</answer>"
    assert parse_action(leaked, "internal").think == "hidden"
    assert parse_action(leaked, "none").kind == "answer"


def test_non_text_input_is_invalid_not_an_exception() -> None:
    assert parse_action(None, "explicit").kind == "invalid"  # type: ignore[arg-type]
    assert parse_action(b"<answer>x</answer>", "explicit").kind == "invalid"  # type: ignore[arg-type]


TAGS = [
    "<search>",
    "</search>",
    "<answer>",
    "</answer>",
    "<summary>",
    "</summary>",
    "<think>",
    "</think>",
    "<information>",
    "</information>",
    "<",
    ">",
    "</",
    " ",
    "\n",
    "x",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=8)), max_size=14),
    st.sampled_from(["explicit", "internal", "none"]),
)
def test_property_never_raises_and_is_consistent(parts: list[str], mode: str) -> None:
    text = "".join(parts)
    action = parse_action(text, mode)
    assert isinstance(action, Action)
    if action.kind == "invalid":
        assert action.error and action.content == ""
    else:
        assert action.error is None and action.content
        assert action.content == action.content.strip()
        assert text.rstrip().endswith(f"</{action.kind}>")
        assert "<information>" not in text and "</information>" not in text
        assert text.count(f"<{action.kind}>") == 1
        others = {"search", "summary", "answer"} - {action.kind}
        assert not any(f"<{o}>" in text or f"</{o}>" in text for o in others)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(["explicit", "internal", "none"]))
def test_property_arbitrary_unicode(text: str, mode: str) -> None:
    assert isinstance(parse_action(text, mode), Action)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_characters="<>"), min_size=1).filter(str.strip),
    st.sampled_from(["search", "summary", "answer"]),
)
def test_property_round_trip(content: str, kind: str) -> None:
    action = parse_action(f"<{kind}>{content}</{kind}>", "explicit")
    assert action.kind == kind and action.content == content.strip()


def test_compact_system_prompt_keeps_the_protocol_in_few_words():
    from searchprime.agent import prompts

    full = prompts.system_prompt("explicit")
    compact = prompts.system_prompt("explicit", "compact")
    assert len(compact) * 3 < len(full)
    for tag in ("<think>", "<search>", "<answer>", "<summary>", "<information>"):
        assert tag in compact
    assert "<think>" not in prompts.system_prompt("internal", "compact")
    with pytest.raises(ValueError, match="style"):
        prompts.system_prompt("explicit", "tiny")
