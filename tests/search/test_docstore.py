"""The compressed document store: round trips, random access, memory-mapping, old layouts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from searchprime.errors import ConfigError
from searchprime.search._docstore import DOCS, OFFSETS, DocStore, DocStoreWriter, store_files
from searchprime.search.bm25 import BM25Search, build_bm25_index

from .conftest import write_jsonl


def _docs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = 'river port Zürich 東京 naïve café emoji🙂 quote" back\\slash tab\t new\nline'.split(
        " "
    )
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 40)))
        doc = {"id": f"d{i}", "title": "" if i % 7 == 0 else f"Title {i} ü", "text": text}
        if i % 5 == 0:
            doc["url"] = f"https://example.org/{i}"
            doc["meta"] = {"rank": i, "tags": ["a", "ß"]}
        out.append(doc)
    out[3]["text"] = ""  # empty text
    return out


def _write(out: Path, docs: list[dict], block: int = 100) -> None:
    w = DocStoreWriter(out)
    for s in range(0, len(docs), block):
        lines = [json.dumps(d, ensure_ascii=False).encode() for d in docs[s : s + block]]
        w.write_block(b"\n".join(lines) + b"\n", np.array([len(x) + 1 for x in lines]))
    assert w.close() == len(docs)


def test_round_trip_and_random_access(tmp_path: Path) -> None:
    docs = _docs(1500)
    _write(tmp_path, docs)
    assert (tmp_path / DOCS).exists() and not (tmp_path / "docs.jsonl").exists()
    raw = sum(len(json.dumps(d, ensure_ascii=False).encode()) for d in docs)
    assert (tmp_path / DOCS).stat().st_size < raw / 2  # compressed (dictionary + frames)
    store = DocStore(tmp_path)
    assert len(store) == len(docs)
    for i in random.Random(1).sample(range(len(docs)), 300) + [0, 3, len(docs) - 1]:
        assert store.get(i) == docs[i]
    hit = store.hit(5, 1.5)
    assert (hit.doc_id, hit.url, hit.score, hit.meta) == (
        "d5",
        docs[5]["url"],
        1.5,
        docs[5]["meta"],
    )
    assert store.hit(3).text == ""
    store.close()


def test_tiny_and_empty_stores(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    _write(tmp_path / "one", [{"id": "x", "title": "", "text": ""}])  # too few for a dictionary
    assert DocStore(tmp_path / "one").get(0) == {"id": "x", "title": "", "text": ""}
    (tmp_path / "none").mkdir()
    DocStoreWriter(tmp_path / "none").close()
    assert len(DocStore(tmp_path / "none")) == 0


def test_store_is_memory_mapped_not_read(tmp_path: Path) -> None:
    """Opening a ~20 MB store and reading a few documents leaves most of it out of memory."""
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
    w = DocStoreWriter(tmp_path)
    for _ in range(6):  # random text compresses little: ~20 MB on disk
        lines = [
            json.dumps({"id": "x", "text": rng.choice(letters, 5000).tobytes().decode()}).encode()
            for _ in range(1000)
        ]
        w.write_block(b"\n".join(lines) + b"\n", np.array([len(x) + 1 for x in lines]))
    w.close()
    size = (tmp_path / DOCS).stat().st_size
    assert size > 15e6

    def rss() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        pytest.skip("no /proc/self/status")

    before = rss()
    store = DocStore(tmp_path)
    for i in (0, 3000, 5999):
        assert len(store.get(i)["text"]) == 5000
    assert rss() - before < size / 4  # neither read whole nor all pages touched
    store.close()


def test_legacy_uncompressed_store_still_reads(tmp_path: Path) -> None:
    """Stores written before compression (``docs.jsonl``) load as they are (dense indexes)."""
    docs = _docs(50)
    lines = [json.dumps(d, ensure_ascii=False).encode() + b"\n" for d in docs]
    (tmp_path / "docs.jsonl").write_bytes(b"".join(lines))
    np.save(tmp_path / OFFSETS, np.concatenate([[0], np.cumsum([len(x) for x in lines])]))
    store = DocStore(tmp_path)
    assert not store.compressed and [store.get(i) for i in range(50)] == docs
    assert store_files(tmp_path) == ["docs.jsonl", OFFSETS]
    store.close()


def test_old_bm25_index_is_refused_with_a_rebuild_hint(tmp_path: Path) -> None:
    rows = [{"id": str(i), "text": f"river port number {i}"} for i in range(30)]
    idx = build_bm25_index(write_jsonl(tmp_path / "c.jsonl", rows), tmp_path / "i")
    assert store_files(idx) == [DOCS, OFFSETS]
    BM25Search.load(idx).close()
    man = json.loads((idx / "searchprime_index.json").read_text())
    man["format_version"] = 1
    (idx / "searchprime_index.json").write_text(json.dumps(man))
    with pytest.raises(ConfigError, match="rebuild it with `searchprime index build`"):
        BM25Search.load(idx)
