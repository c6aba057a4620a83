"""Restoring the stop sequence a server strips."""

from searchprime.llm.base import SamplingParams, restore_stop

P = SamplingParams(stop=["</search>", "</answer>"])


def test_unclosed_action_gets_its_close_tag():
    assert restore_stop("<think>x</think><search>foo", P) == "<think>x</think><search>foo</search>"
    assert restore_stop("<answer>Paris", P) == "<answer>Paris</answer>"


def test_closed_or_tagless_text_is_unchanged():
    assert restore_stop("<answer>Paris</answer>", P) == "<answer>Paris</answer>"
    assert restore_stop("no tags at all", P) == "no tags at all"
