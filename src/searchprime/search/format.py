"""The one text formatting of search hits that every backend's results go through.

Each hit is numbered and shows its title and where it comes from, so the agent can weigh
authority (Authority Evaluation needs a source to weigh)::

    Doc 1 (Title: Orvane Telmar) [Source: encyclopedia | orbis-wiki.org]
    Orvane Telmar is a river port ...

:func:`parse_hits` inverts :func:`format_hits`, so annotators and scripted teachers that see
only the text can recover the documents. :func:`split_contents` reads a passage stored in
Search-R1's ``contents`` layout (``'"Title"\\ntext'``) the way Search-R1 shows it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlparse

from searchprime.records import SearchHit

__all__ = ["NO_RESULTS", "domain_of", "format_hit", "format_hits", "parse_hits", "split_contents"]

NO_RESULTS = "No results found."

_HEADER = re.compile(r"^Doc (\d+) \(Title: (.*?)\)(?: \[Source: (.*?)\])?$")


def domain_of(url: str | None) -> str | None:
    """The host of ``url`` without a leading ``www.``."""
    if not url:
        return None
    host = urlparse(url).netloc or urlparse("//" + url).netloc
    return host[4:] if host.startswith("www.") else (host or None)


def _clean(text: str) -> str:
    return " ".join(text.split())


def split_contents(contents: str) -> tuple[str, str]:
    """``(title, text)`` of a Search-R1 ``contents`` string: the first line is the title.

    As Search-R1's retrieval client formats ``Doc i(Title: {first line}) {rest}``, a passage
    with no newline is all title and no text (so the agent still sees it as the title); the
    double quotes wiki-18 puts around titles are dropped.

    >>> split_contents('"Lyon"\\nLyon is a city.')
    ('Lyon', 'Lyon is a city.')
    >>> split_contents("no title line here")
    ('no title line here', '')
    """
    title, _, text = contents.partition("\n")
    title = title.strip()
    if len(title) >= 2 and title[0] == '"' and title[-1] == '"':
        title = title[1:-1]
    return title, text.strip()


def format_hit(rank: int, hit: SearchHit) -> str:
    """Format one hit (``rank`` is 1-based)."""
    parts = [p for p in (hit.source, domain_of(hit.url)) if p]
    src = f" [Source: {' | '.join(parts)}]" if parts else ""
    title = _clean(hit.title).replace(")", "]").replace("(", "[")
    return f"Doc {rank} (Title: {title}){src}\n{_clean(hit.text)}"


def format_hits(hits: Sequence[SearchHit]) -> str:
    """Format a result list for the agent; an empty list says so explicitly."""
    if not hits:
        return NO_RESULTS
    return "\n".join(format_hit(i, h) for i, h in enumerate(hits, start=1))


def parse_hits(text: str) -> list[SearchHit]:
    """Recover hits from :func:`format_hits` output (title, source, domain, text, rank)."""
    hits: list[SearchHit] = []
    current: dict | None = None
    body: list[str] = []

    def flush() -> None:
        if current is not None:
            current["text"] = "\n".join(body).strip()
            hits.append(SearchHit(**current))

    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if m:
            flush()
            rank, title, src = m.groups()
            source, url = None, None
            if src:
                bits = [b.strip() for b in src.split("|")]
                if len(bits) == 2:
                    source, url = bits
                elif bits and "." in bits[0] and " " not in bits[0]:
                    url = bits[0]
                elif bits:
                    source = bits[0]
            current = {
                "doc_id": f"rank{rank}",
                "title": title,
                "source": source,
                "url": url,
                "meta": {"rank": int(rank)},
            }
            body = []
        elif current is not None:
            body.append(line)
    flush()
    return hits
