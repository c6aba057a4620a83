"""Corpus readers: both layouts, gzip and parquet, located errors, skip-and-count."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from searchprime.errors import RecordError
from searchprime.search.corpus import CorpusDoc, read_corpus

from .conftest import toy_rows, write_jsonl


def test_both_layouts(toy_corpus: Path) -> None:
    docs = list(read_corpus(toy_corpus))
    assert len(docs) == 12 and all(isinstance(d, CorpusDoc) for d in docs)
    paris, lyon = docs[0], docs[1]
    assert (paris.id, paris.title, paris.source) == ("paris", "Paris", "encyclopedia")
    assert paris.url == "https://en.wikipedia.org/wiki/Paris"
    # Search-R1 layout: quoted title on the first line
    assert (lyon.title, lyon.text) == ("Lyon", "Lyon is a city in France on the Rhone river.")
    assert lyon.contents == '"Lyon"\nLyon is a city in France on the Rhone river.'


def test_unquoted_title_untitled_and_meta(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"id": 7, "contents": "Plain Title\nbody text", "year": 1999},
            {"id": "x", "contents": "no title line here"},
        ],
    )
    a, b = list(read_corpus(p))
    assert (a.id, a.title, a.text, a.meta) == ("7", "Plain Title", "body text", {"year": 1999})
    assert (b.title, b.text) == ("no title line here", "")  # Search-R1: first line = title


def test_gzip_and_parquet(tmp_path: Path) -> None:
    rows = toy_rows()
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    assert [d.id for d in read_corpus(gz)] == [r["id"] for r in rows]

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_pylist([{"id": f"p{i}", "contents": f'"T{i}"\nbody {i}'} for i in range(5)]),
        tmp_path / "c.parquet",
    )
    docs = list(read_corpus(tmp_path / "c.parquet"))
    assert [(d.id, d.title, d.text) for d in docs][2] == ("p2", "T2", "body 2")


BAD = [
    ('{"id": "a", "contents": "\\"A\\"\\nok"}', None),
    ("{not json", "<json>"),
    ('{"contents": "x"}', "id"),
    ('{"id": "c", "contents": 5}', "contents"),
    ('{"id": "d", "title": "T"}', "contents"),
    ('{"id": "e", "text": "t", "url": 3}', "url"),
    ("[1, 2]", "<record>"),
]


@pytest.mark.parametrize("line,field", [b for b in BAD if b[1]])
def test_bad_line_names_file_line_field(tmp_path: Path, line: str, field: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(BAD[0][0] + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as info:
        list(read_corpus(p))
    assert info.value.line == 3 and info.value.field == field
    assert str(info.value).startswith(f"{p}:3: {field}: ")


def test_skip_bad_counts(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(b[0] for b in BAD) + "\n", encoding="utf-8")
    reader = read_corpus(p, skip_bad=True)
    assert [d.id for d in reader] == ["a"]
    assert reader.skipped == len(BAD) - 1 and reader.read == 1
    assert reader.errors[0].line == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="not found"):
        read_corpus(tmp_path / "nope.jsonl")
