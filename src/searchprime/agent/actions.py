"""Parse one model response into exactly one action (never raises).

A response is valid when, after an optional thinking part, it holds exactly one action:

* exactly one of ``<search>``, ``<summary>``, ``<answer>`` opens and closes once, in order;
  the other two action tags do not appear at all;
* the action's content is not empty;
* ``<information>`` / ``</information>`` do not appear (only the environment writes them);
* only whitespace follows the action's closing tag;
* at most one ``<think> ... </think>`` block, closed before the action opens.

Thinking: ``<think>`` text is returned in :attr:`Action.think` in every mode. With
``thinking="explicit"`` free text before the action (without ``<think>`` tags, as in the
scaffold's ``Thinking Process:`` format) is the thinking too. A lone ``</think>`` before the
action (chat templates that open ``<think>`` in the prompt) closes thinking that began at the
start of the response.
"""

from __future__ import annotations

from searchprime.records import Action

__all__ = ["ACTION_TAGS", "parse_action"]

#: The action kinds a model may write, in protocol order.
ACTION_TAGS: tuple[str, ...] = ("search", "summary", "answer")


def _invalid(error: str, think: str | None = None) -> Action:
    return Action(kind="invalid", error=error, think=think)


def parse_action(text: str, thinking: str = "explicit") -> Action:
    """Parse ``text`` into one :class:`Action`; problems give ``kind="invalid"`` with ``error``.

    >>> parse_action("<think>need the year</think>\\n<search> Orvane founded </search>").content
    'Orvane founded'
    >>> parse_action("<search>a</search><answer>b</answer>").error
    'more than one action (search, answer)'
    """
    try:
        return _parse(text, thinking)
    except Exception as exc:  # pragma: no cover - a safety net: the parser must never raise
        return _invalid(f"unparsable response ({type(exc).__name__})")


def _parse(text: str, thinking: str) -> Action:
    if not isinstance(text, str):
        return _invalid(f"response is not text ({type(text).__name__})")
    if not text.strip():
        return _invalid("empty response")
    if "<information>" in text or "</information>" in text:
        return _invalid("the response writes <information> tags; only search results may")

    present: list[str] = []
    for tag in ACTION_TAGS:
        opens, closes = text.count(f"<{tag}>"), text.count(f"</{tag}>")
        if opens == 0 and closes == 0:
            continue
        if opens != closes:
            return _invalid(f"unbalanced <{tag}> tags ({opens} open, {closes} close)")
        if opens > 1:
            return _invalid(f"{opens} <{tag}> actions; exactly one action is allowed")
        present.append(tag)
    if not present:
        return _invalid("no action: expected <search>, <summary> or <answer>")
    if len(present) > 1:
        return _invalid(f"more than one action ({', '.join(present)})")

    tag = present[0]
    start = text.index(f"<{tag}>")
    end = text.index(f"</{tag}>")
    if end < start:
        return _invalid(f"</{tag}> comes before <{tag}>")
    content = text[start + len(tag) + 2 : end].strip()
    tail = text[end + len(tag) + 3 :]

    think, think_error = _thinking(text[:start], text, start, thinking)
    if think_error:
        return _invalid(think_error, think)
    if tail.strip():
        return _invalid(f"text after </{tag}>; the response must end with the action", think)
    if not content:
        what = {"search": "query", "summary": "summary", "answer": "answer"}[tag]
        return _invalid(f"empty {what} in <{tag}>", think)
    return Action(kind=tag, content=content, think=think)


def _thinking(
    before: str, text: str, action_start: int, mode: str
) -> tuple[str | None, str | None]:
    """Extract the thinking that precedes the action; return (think, error)."""
    opens, closes = text.count("<think>"), text.count("</think>")
    if opens > 1 or closes > 1:
        return None, "more than one <think> block"
    if opens == 1 and closes == 0:
        return None, "unclosed <think> tag"
    if closes == 1:
        close = text.index("</think>")
        if close > action_start:
            return None, "</think> after the action opens; think first, then act"
        if opens == 1:
            open_ = text.index("<think>")
            if open_ > close:
                return None, "</think> comes before <think>"
            think = text[open_ + len("<think>") : close].strip()
        else:  # the template opened <think> in the prompt
            think = before[:close].strip()
        return think or None, None
    if mode == "explicit":
        free = before.strip()
        return (free or None), None
    return None, None
