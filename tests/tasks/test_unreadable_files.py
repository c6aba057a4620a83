"""Task files that cannot be read as text, gzip or parquet raise one located RecordError."""

from __future__ import annotations

import gzip
import json
import os
import random
import zlib
from pathlib import Path

import pytest

from searchprime.errors import RecordError
from searchprime.tasks import load_tasks

GOOD = [{"id": str(i), "question": f"question {i}?", "answer": f"a{i}"} for i in range(400)]
NOT_UTF8 = b'{"id": "x", "question": "caf\xe9?", "answer": "a"}\n'  # latin-1 e-acute


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def error_of(path: Path) -> RecordError:
    with pytest.raises(RecordError) as info:
        load_tasks(path)
    return info.value


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_bytes_that_are_not_utf8_name_the_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tasks{suffix}"
    path.write_bytes(jsonl(GOOD[:2]) + NOT_UTF8)
    err = error_of(path)
    assert (err.line, err.field) == (3, "<encoding>")
    column = NOT_UTF8.index(b"\xe9") + 1
    assert err.problem == f"not UTF-8 text (byte 0xe9 at byte {column} of the line)"


def test_json_array_with_bad_bytes_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    body = ",\n".join(json.dumps(r) for r in GOOD[:3]).encode()
    path.write_bytes(b"[\n" + body + b",\n" + NOT_UTF8.rstrip() + b"\n]\n")
    err = error_of(path)
    assert (err.line, err.field) == (5, "<encoding>")


def test_random_binary_csv(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_bytes(b"question,answer\nq1,a1\n" + bytes(range(128, 256)) + b"\n")
    err = error_of(path)
    assert (err.line, err.field) == (3, "<encoding>")
    assert str(err).startswith(f"{path}:3: <encoding>: not UTF-8 text")


def test_csv_reader_error_is_located(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text("question,answer\nq1,a1\n" + "x" * 200_000 + ",a\n")
    err = error_of(path)
    assert (err.line, err.field) == (3, "<csv>") and "field larger than field limit" in err.problem


def test_garbage_gzip_tasks(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl.gz"
    path.write_bytes(jsonl(GOOD))  # plain text under a .gz name
    err = error_of(path)
    assert (err.line, err.field, err.problem) == (1, "<gzip>", "not a gzip file")


def test_truncated_gzip_tasks_name_the_first_line_lost(tmp_path: Path) -> None:
    data = gzip.compress(jsonl(GOOD))
    cut = data[: len(data) // 2]
    complete = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut).count(b"\n")
    path = tmp_path / "tasks.jsonl.gz"
    path.write_bytes(cut)
    err = error_of(path)
    assert 0 < complete < len(GOOD)
    assert (err.line, err.field) == (complete + 1, "<gzip>")
    assert err.problem.startswith("truncated gzip file")


@pytest.mark.parametrize("seed", range(12))
def test_corrupt_gzip_data(tmp_path: Path, seed: int) -> None:
    # damage anywhere in the stream: a line that decodes to garbage (bad JSON, bad bytes, a
    # missing field) is blamed on the gzip, not reported as a bad record
    path = tmp_path / "tasks.jsonl.gz"
    path.write_bytes(damaged(seed))
    err = error_of(path)
    assert err.field == "<gzip>" and err.line is not None
    assert err.problem.startswith(("corrupt gzip data", "truncated gzip file"))


def damaged(seed: int) -> bytes:
    rng = random.Random(seed)
    data = bytearray(gzip.compress(jsonl(GOOD), mtime=0))
    at = rng.randrange(len(data) // 4, len(data) - 80)
    data[at : at + 64] = rng.randbytes(64)
    return bytes(data)


def decodes_to_garbage(data: bytes) -> bool:
    """Whether the damage goes unnoticed until the CRC at the end, the lines before it garbage."""
    out = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        text = out.decompress(data[:-8])  # all but the CRC and length trailer
    except zlib.error:
        return False
    return text != jsonl(GOOD)


def test_garbage_line_after_damage_names_where_it_starts(tmp_path: Path) -> None:
    seed = next(s for s in range(500) if decodes_to_garbage(damaged(s)))
    path = tmp_path / "tasks.jsonl.gz"
    path.write_bytes(damaged(seed))
    err = error_of(path)
    assert err.field == "<gzip>" and "is the first that decodes to garbage" in err.problem


def test_bad_record_in_a_sound_gzip_is_a_record_error(tmp_path: Path) -> None:
    rows = [*GOOD[:5], {"id": "x", "question": "q?"}, *GOOD[5:10]]
    path = tmp_path / "tasks.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl(rows)))
    err = error_of(path)
    assert (err.line, err.field) == (6, "answer")


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_bad_parquet_tasks(tmp_path: Path, how: str) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist(GOOD), good)
    data = good.read_bytes()
    path = tmp_path / "tasks.parquet"
    path.write_bytes(os.urandom(3000) if how == "garbage" else data[: len(data) // 2])
    err = error_of(path)
    assert (err.line, err.field) == (None, "<parquet>")
    assert err.problem.startswith("cannot read: ") and "\n" not in err.problem
    assert str(path) not in err.problem  # the path is said once, in front
    assert len(load_tasks(good)) == len(GOOD)


def test_corrupt_saved_hf_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.Dataset.from_list(GOOD[:50]).save_to_disk(str(folder))
    (arrow,) = folder.glob("*.arrow")
    arrow.write_bytes(arrow.read_bytes()[:300])
    err = error_of(f"hfdisk:{folder}")
    assert (err.path, err.field) == (str(folder), "<dataset>")
    assert err.problem.startswith("cannot load: ") and "\n" not in err.problem


def test_deeply_nested_json_is_an_error_not_a_crash(tmp_path: Path) -> None:
    for name, body in (("t.jsonl", "[" * 100_000 + "\n"), ("t.json", "[" + "[" * 100_000)):
        path = tmp_path / name
        path.write_text(body)
        err = error_of(path)
        assert (err.line, err.field) == (1, "<json>")


def test_utf8_bom_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl(GOOD[:2]))
    assert [t.id for t in load_tasks(path)] == ["0", "1"]
