"""Issue 14: a passage with no title line is titled as Search-R1 titles it."""

from __future__ import annotations

import pytest

from searchprime.records import SearchHit
from searchprime.search.format import format_hits, parse_hits, split_contents


def search_r1_passages2string(contents: list[str]) -> str:
    """Search-R1's retrieval client (``_passages2string``), applied to raw ``contents``."""
    out = ""
    for idx, content in enumerate(contents):
        title = content.split("\n")[0]
        text = "\n".join(content.split("\n")[1:])
        out += f"Doc {idx + 1}(Title: {title}) {text}\n"
    return out


@pytest.mark.parametrize(
    ("contents", "title", "text"),
    [
        ('"Lyon"\nLyon is a city on the Rhone.', "Lyon", "Lyon is a city on the Rhone."),
        ("Plain Title\nbody text\nmore body", "Plain Title", "body text\nmore body"),
        ("no title line here", "no title line here", ""),
        ("\nonly a body", "", "only a body"),
        ('"Quoted only"', "Quoted only", ""),
    ],
)
def test_split_contents_takes_the_first_line_as_title(contents: str, title: str, text: str) -> None:
    assert split_contents(contents) == (title, text)


def test_the_agent_sees_what_search_r1_shows() -> None:
    contents = ['"Lyon"\nLyon is a city.', "Orvane Telmar is a river port with no title line."]
    hits = [
        SearchHit(doc_id=str(i), title=t, text=x)
        for i, (t, x) in enumerate(map(split_contents, contents))
    ]
    ours = parse_hits(format_hits(hits))
    theirs = search_r1_passages2string(contents).splitlines()
    for hit, line in zip(ours, theirs, strict=True):
        shown_title = line.split("(Title: ", 1)[1].split(") ", 1)[0].strip('"')
        assert hit.title == shown_title
        assert hit.text == line.split(") ", 1)[1].strip()
    assert ours[1].title.startswith("Orvane Telmar") and ours[1].text == ""
