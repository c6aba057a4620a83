"""Every unreadable input file, through the real CLI: exit 2, exactly one located
``error: file:line: field: problem`` line, never a traceback or a bare ``Aborted.``."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from searchprime.records import Trajectory

BINARY = bytes(random.Random(13).randrange(256) for _ in range(4000))
DEAD = "http://127.0.0.1:9"  # nothing listens: the bad file must be refused before any call


def cli(*args: object, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from searchprime.cli.main import main; main()"]
    return subprocess.run(
        cmd + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_one_located_error(
    r: subprocess.CompletedProcess, path: Path, line: int | None, field: str
) -> str:
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert "Traceback" not in text and "Aborted" not in text, text
    errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, text
    where = f"{path}:{line}" if line is not None else str(path)
    assert errors[0].startswith(f"error: {where}: {field}: "), errors[0]
    return errors[0]


def traj_lines(n: int) -> bytes:
    return b"".join(
        Trajectory(task_id=str(i), question="q?", final_answer="a", termination="answer")
        .model_dump_json()
        .encode()
        + b"\n"
        for i in range(n)
    )


def corpus_lines(n: int) -> bytes:
    rows = (
        {"id": str(i), "contents": f'"Title {i}"\npassage {i} about topic {i % 7}'}
        for i in range(n)
    )
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def truncated_gzip(data: bytes, path: Path) -> int:
    """Write ``data`` gzipped and cut in half to ``path``; return the first line lost."""
    cut = gzip.compress(data)[: len(gzip.compress(data)) // 2]
    path.write_bytes(cut)
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut).count(b"\n") + 1


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    f = {name: d / name for name in ("traj.jsonl", "bin_traj.jsonl", "bin_tasks.jsonl")}
    f["traj.jsonl"].write_bytes(traj_lines(5))
    f["bin_traj.jsonl"].write_bytes(traj_lines(3) + BINARY + b"\n")
    f["bin_tasks.jsonl"].write_bytes(BINARY)
    return f


@pytest.mark.parametrize(
    "argv",
    [
        "score {bin} --out {tmp}/s.jsonl",
        "behaviors annotate {bin} --out {tmp}/a.jsonl --judge rules --world {tmp}",
        "behaviors stats {bin}",
        "prime {bin} --out {tmp}/primed",
    ],
    ids=["score", "annotate", "stats", "prime"],
)
def test_binary_trajectories(files, tmp_path, argv) -> None:
    bad = files["bin_traj.jsonl"]
    r = cli(*argv.format(bin=bad, tmp=tmp_path).split())
    line = assert_one_located_error(r, bad, 4, "<encoding>")
    assert "not UTF-8 text" in line


def test_binary_tasks_for_score(files, tmp_path) -> None:
    r = cli("score", files["traj.jsonl"], "--out", tmp_path / "s.jsonl",
            "--tasks", files["bin_tasks.jsonl"])  # fmt: skip
    assert_one_located_error(r, files["bin_tasks.jsonl"], 1, "<encoding>")


def _task_file(kind: str, tmp: Path) -> tuple[Path, int | None, str]:
    good = [{"id": str(i), "question": f"q{i}?", "answer": "a"} for i in range(300)]
    text = "".join(json.dumps(t) + "\n" for t in good).encode()
    if kind == "jsonl":
        path = tmp / "tasks.jsonl"
        path.write_bytes(BINARY)
        return path, 1, "<encoding>"
    if kind == "csv":
        path = tmp / "tasks.csv"
        path.write_bytes(b"question,answer\n" + BINARY)
        return path, 2, "<encoding>"
    if kind == "json":
        path = tmp / "tasks.json"
        path.write_bytes(b"[\n" + json.dumps(good[0]).encode() + b",\n" + BINARY + b"\n]")
        return path, 3, "<encoding>"
    if kind == "gz-garbage":
        path = tmp / "tasks.jsonl.gz"
        path.write_bytes(text)
        return path, 1, "<gzip>"
    if kind == "gz-truncated":
        path = tmp / "tasks.jsonl.gz"
        return path, truncated_gzip(text, path), "<gzip>"
    path = tmp / "tasks.parquet"
    path.write_bytes(b"PAR1" + BINARY + b"PAR1")
    return path, None, "<parquet>"


@pytest.mark.parametrize("kind", ["jsonl", "csv", "json", "gz-garbage", "gz-truncated", "parquet"])
def test_bad_task_files_for_rollout(tmp_path, kind) -> None:
    path, line, field = _task_file(kind, tmp_path)
    r = cli("rollout", "--tasks", path, "--out", tmp_path / "o.jsonl",
            "--policy-url", f"{DEAD}/v1", "--search-url", DEAD)  # fmt: skip
    assert_one_located_error(r, path, line, field)
    assert not (tmp_path / "o.jsonl").exists() or (tmp_path / "o.jsonl").stat().st_size == 0


def _corpus_file(kind: str, tmp: Path) -> tuple[Path, int | None, str, str]:
    text = corpus_lines(3000)
    if kind == "gz-garbage":
        path = tmp / "corpus.jsonl.gz"
        path.write_bytes(b"this is not gzip\n" * 50)
        return path, 1, "<gzip>", "not a gzip file"
    if kind == "gz-truncated":
        path = tmp / "corpus.jsonl.gz"
        return path, truncated_gzip(text, path), "<gzip>", "truncated gzip file"
    if kind == "parquet":
        path = tmp / "corpus.parquet"
        path.write_bytes(BINARY)
        return path, None, "<parquet>", "cannot read: "
    path = tmp / "corpus.jsonl"
    path.write_bytes(text[:500] + BINARY)
    return path, text[:500].count(b"\n") + 1, "<json>", "not valid JSON"


@pytest.mark.parametrize("kind", ["gz-garbage", "gz-truncated", "parquet", "binary"])
def test_bad_corpus_for_index_build(tmp_path, kind) -> None:
    path, line, field, problem = _corpus_file(kind, tmp_path)
    r = cli("index", "build", path, tmp_path / "index", "--workers", "1")
    err = assert_one_located_error(r, path, line, field)
    assert f"{field}: {problem}" in err


@pytest.mark.timeout(90)
def test_bad_gzip_corpus_with_tokenizer_processes(tmp_path) -> None:
    """The block reader runs in the pool's feeder thread; its error must still reach the CLI
    (RecordError must survive pickling on its way back from a worker)."""
    path = tmp_path / "corpus.jsonl.gz"
    line = truncated_gzip(corpus_lines(6000), path)
    cfg = tmp_path / "bm25.yaml"
    cfg.write_text("block_bytes: 4096\n")
    r = cli(
        "index", "build", path, tmp_path / "index", "--workers", "2", "--config", cfg, timeout=30
    )
    assert_one_located_error(r, path, line, "<gzip>")


def test_schema_version_through_score(tmp_path) -> None:
    rec = json.loads(traj_lines(1))
    path = tmp_path / "t.jsonl"
    for version, problem in ((-7, "expected a positive integer, got -7"),
                             ("one", "expected a positive integer, got 'one'"),
                             (7, "schema_version 7 is newer than this searchprime")):  # fmt: skip
        path.write_text(json.dumps({**rec, "schema_version": version}) + "\n")
        r = cli("score", path, "--out", tmp_path / "s.jsonl")
        err = assert_one_located_error(r, path, 1, "schema_version")
        assert problem in err
