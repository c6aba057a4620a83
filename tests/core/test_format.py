"""The one hit formatting round-trips through its parser."""

from __future__ import annotations

from searchprime.records import SearchHit
from searchprime.search.format import NO_RESULTS, domain_of, format_hits, parse_hits


def test_format_and_parse_round_trip():
    hits = [
        SearchHit(
            doc_id="a",
            title="Orvane Telmar",
            text="A river port.\nIn the north.",
            source="encyclopedia",
            url="https://www.orbis-wiki.org/Orvane",
        ),
        SearchHit(doc_id="b", title="Telmar (band)", text="A band.", source="forum"),
        SearchHit(doc_id="c", title="Plain", text="No source."),
    ]
    text = format_hits(hits)
    assert (
        text.splitlines()[0]
        == "Doc 1 (Title: Orvane Telmar) [Source: encyclopedia | orbis-wiki.org]"
    )
    back = parse_hits(text)
    assert [h.title for h in back] == ["Orvane Telmar", "Telmar [band]", "Plain"]
    assert [h.source for h in back] == ["encyclopedia", "forum", None]
    assert back[0].url == "orbis-wiki.org"
    assert back[0].text == "A river port. In the north."
    assert [h.meta["rank"] for h in back] == [1, 2, 3]


def test_empty_results_are_explicit():
    assert format_hits([]) == NO_RESULTS
    assert parse_hits(NO_RESULTS) == []


def test_domain_of():
    assert domain_of("https://www.example.org/x") == "example.org"
    assert domain_of("example.org/path") == "example.org"
    assert domain_of(None) is None
