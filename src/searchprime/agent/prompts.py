"""Every prompt string the agent loop shows a policy, in one place.

The tag protocol follows the Behavior Priming scaffold (arXiv 2510.06534, short-answer mode):
one action per response among ``<search> query </search>``, ``<summary> ... </summary>`` and
``<answer> ... </answer>``; search results come back inside ``<information> ... </information>``;
the model never writes ``<information>`` itself. With ``thinking="explicit"`` the model reasons
inside ``<think> ... </think>`` before its action; with ``"internal"`` a reasoning model thinks
on its own (the server returns that reasoning separately).

The conversation is chat-shaped: a system message with the rules, a first user message
holding the line ``Question: <question>``, then alternating model responses and user messages
carrying observations and reminders.
"""

from __future__ import annotations

from typing import Literal

Thinking = Literal["explicit", "internal", "none"]
#: ``full`` / ``compact``: the protocol; ``+handbook``: the same, followed by :data:`HANDBOOK`.
PromptStyle = Literal["full", "compact", "full+handbook", "compact+handbook"]
#: Every :data:`PromptStyle`, in order.
PROMPT_STYLES: tuple[str, ...] = ("full", "compact", "full+handbook", "compact+handbook")

__all__ = [
    "FORMAT_REMINDER",
    "HANDBOOK",
    "PROMPT_STYLES",
    "PromptStyle",
    "SUMMARY_ACK",
    "SUMMARY_REMINDER",
    "Thinking",
    "first_user_message",
    "information_message",
    "search_reminder",
    "system_prompt",
    "turns_left_reminder",
    "with_handbook",
    "with_reminders",
]

_INTRO = """\
You are a research assistant that answers questions by searching. You can take many turns of \
searching and reasoning before you answer.

In each turn, decide the single next action from the history so far. The history contains the \
question, your earlier responses, and the search results of each <search> query, which the \
search engine returns between <information> and </information>.

Rules you must follow:
1. Take exactly ONE action per response; never put two actions in one response.
2. Use only the actions listed below, with exactly their tags.
3. Do not repeat a search you already made; read the earlier results first.
4. Never write <information> or </information> yourself; only the search engine does.
5. Stop your response right after the closing tag of your action.

Actions:
1. <search> query </search>: search for information you are missing.
2. <answer> answer </answer>: give the final answer once you can. The answer must be SHORT \
(ideally 1-5 words, at most 10): only the fact itself, such as a name, date, number or short \
phrase, with no explanation.
3. <summary> important parts of the history </summary>: condense the history. Keep what \
matters for the question: the queries you already made and the useful findings from their \
results, with their sources, written as plain text (no tags inside the summary). After a \
summary, the summary replaces the earlier turns in your history.
"""

_FORMAT_EXPLICIT = """
Response format:
First think step by step about the question and the history inside <think> and </think>. \
Then write exactly one action.

Example:
<think> I need to find out who ... The first results did not mention ..., so I will search \
for ... </think>
<search> query </search>
"""

_FORMAT_INTERNAL = """
Response format:
Think as much as you need, then write exactly one action, for example:
<search> query </search>
"""

_FORMAT_NONE = """
Response format:
Write exactly one action, for example:
<search> query </search>
"""

_FORMATS: dict[str, str] = {
    "explicit": _FORMAT_EXPLICIT,
    "internal": _FORMAT_INTERNAL,
    "none": _FORMAT_NONE,
}

#: Shown after a response that did not hold exactly one valid action.
FORMAT_REMINDER = (
    "Your previous response was not a valid action, so nothing was done. Pay attention to the "
    "output format: exactly one of <search> query </search>, <summary> ... </summary> or "
    "<answer> answer </answer>, and nothing after its closing tag."
)

#: Shown once the context passes the token budget: ask for a summary.
SUMMARY_REMINDER = (
    "Your history has grown long. Consider summarising it with <summary> ... </summary>, "
    "keeping the queries and the findings that matter for the question."
)

#: The observation after a summary: the summary now stands for the earlier turns.
SUMMARY_ACK = "Your summary now replaces the earlier turns. Continue with your next action."


#: The same protocol in ~80 tokens instead of ~400, for small policies fine-tuned on it: on a
#: CPU every prompt token is paid again in each SFT sample and each decoding step.
_COMPACT = {
    "explicit": "Answer the question by searching. In each response, first reason briefly in "
    "<think> </think>, then take exactly one action: <search> query </search>, <answer> short "
    "answer </answer> or <summary> notes </summary>. Search results come back in "
    "<information> </information>.",
    "internal": "Answer the question by searching. In each response take exactly one action: "
    "<search> query </search>, <answer> short answer </answer> or <summary> notes </summary>. "
    "Search results come back in <information> </information>.",
}
_COMPACT["none"] = _COMPACT["internal"]


#: The four behaviors of the study (DESIGN.md §1) as advice in the system prompt: in-context
#: priming without training (the ``handbook`` arm, and ``prompted-rl`` during RL only).
HANDBOOK = """\
Good searchers do four things:
1. Verify: before relying on a critical fact, confirm it with a second search or source.
2. Weigh authority: when sources disagree, trust the encyclopedia or official page over forums \
and blogs.
3. Adapt: when results miss, change the query: try an alias, other keywords, or terms from the \
results.
4. Recover: when a step was wrong (a similar name, the wrong entity, a dead end), say so and \
search for the right one."""


def with_handbook(style: str) -> str:
    """``style`` followed by :data:`HANDBOOK` (``compact`` -> ``compact+handbook``)."""
    base = style.split("+", 1)[0]
    if base not in ("full", "compact"):
        raise ValueError(f"style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")
    return f"{base}+handbook"


def system_prompt(thinking: Thinking = "explicit", style: PromptStyle = "full") -> str:
    """The system message: the tag protocol, with the response format for ``thinking``; a
    ``+handbook`` style appends :data:`HANDBOOK` after it."""
    if thinking not in _FORMATS:
        raise ValueError(f"thinking must be one of {sorted(_FORMATS)}, got {thinking!r}")
    if style not in PROMPT_STYLES:
        raise ValueError(f"style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")
    base, _, extra = style.partition("+")
    text = _COMPACT[thinking] if base == "compact" else _INTRO + _FORMATS[thinking]
    return text.rstrip("\n") + "\n\n" + HANDBOOK if extra == "handbook" else text


def first_user_message(question: str) -> str:
    """The first user message; it holds the line ``Question: <question>`` (one line)."""
    one_line = " ".join(question.split())
    return f"Question: {one_line}\n"


def information_message(formatted_hits: str) -> str:
    """The observation after a search: results inside ``<information>`` tags."""
    return f"<information>\n{formatted_hits}\n</information>"


def search_reminder(n_searches: int) -> str:
    """Shown after ``n_searches`` consecutive searches."""
    return (
        f"Note: you have made {n_searches} searches in a row. Consider whether you can answer "
        "now. If you still need to search, check the earlier results and do not repeat a search."
    )


def turns_left_reminder(turns_left: int) -> str:
    """Shown when few turns remain."""
    what = "turn" if turns_left == 1 else "turns"
    return (
        f"Note: you have {turns_left} {what} left. Give your final answer with "
        "<answer> answer </answer> soon; an unanswered question counts as wrong."
    )


def with_reminders(observation: str, reminders: list[str]) -> str:
    """Append reminders after an observation (after the closing tag, one per line)."""
    if not reminders:
        return observation
    return observation + "\n\n" + "\n".join(reminders)
