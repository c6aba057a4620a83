"""Helpers for the agent tests: a scripted policy, a tiny corpus and tasks over it."""

from __future__ import annotations

import re
from typing import Any

from searchprime.records import Message, Task
from tests.scripted_llm import ScriptedLLM

__all__ = ["ScriptedLLM"]  # re-exported: agent tests import it from here

QUESTION_RE = re.compile(r"^Question: (.*)$", re.MULTILINE)

CORPUS = [
    {
        "id": "orvane-enc",
        "title": "Orvane Telmar",
        "text": "Orvane Telmar is a river port founded in 1821 by the trader Asha Venn.",
        "source": "encyclopedia",
        "url": "https://orbis-wiki.org/wiki/Orvane_Telmar",
    },
    {
        "id": "orvane-forum",
        "title": "Orvane Telmar history thread",
        "text": "Pretty sure Orvane Telmar was founded by Dorn Halix around 1850.",
        "source": "forum",
        "url": "https://talk.riverports.net/t/42",
    },
    {
        "id": "venn-enc",
        "title": "Asha Venn",
        "text": "Asha Venn was a trader born in the city of Kelmere.",
        "source": "encyclopedia",
        "url": "https://orbis-wiki.org/wiki/Asha_Venn",
    },
    {
        "id": "kelmere-news",
        "title": "Kelmere",
        "text": "Kelmere is a northern city known for its glass markets.",
        "source": "news",
        "url": "https://www.northern-daily.com/kelmere",
    },
]
CORPUS += [
    {
        "id": f"filler-{i}",
        "title": f"Filler town {i}",
        "text": f"Filler town {i} has a market, a mill and {i} bridges over a small river.",
        "source": "blog",
    }
    for i in range(40)
]


def make_tasks(n: int) -> list[Task]:
    """n tasks whose answers the scripted policy can find in the corpus."""
    return [
        Task(
            id=f"t{i:03d}",
            question=f"Who founded Orvane Telmar? (variant {i})",
            answers=["Asha Venn"],
            data_source="test",
        )
        for i in range(n)
    ]


def searcher_policy(messages: list[Message], _: int) -> str:
    """Search for the founder, then answer with the name from the encyclopedia hit."""
    question = QUESTION_RE.search(messages[1].content)
    assert question, "the first user message must hold a Question: line"
    last = messages[-1].content
    if "<information>" in last:
        m = re.search(r"founded in \d+ by the trader ([A-Z]\w+ [A-Z]\w+)", last)
        if m:
            return (
                f"<think>The encyclopedia names the founder.</think>\n<answer>{m.group(1)}</answer>"
            )
        return "<think>Nothing useful.</think>\n<search>Orvane Telmar founder"
    return "<think>I should look up the port.</think>\n<search>who founded Orvane Telmar"


def http_responder(body: dict[str, Any]) -> str:
    """searcher_policy for the fake OpenAI server (the server cuts the stop string off)."""
    messages = [Message(role=m["role"], content=m["content"]) for m in body["messages"]]
    return searcher_policy(messages, 0)
