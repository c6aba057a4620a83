"""bench/retrieval.py runs without the Lucene baseline and says so (no typed-in ratios)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "retrieval.py"


def test_help() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--lucene-python" in out.stdout


@pytest.mark.slow  # ~12 s idle, ~30 s on the shared 2-core box (corpus, build, imports)
def test_tiny_run_without_lucene_prints_no_ratio(tmp_path: Path) -> None:
    cmd = [sys.executable, str(BENCH), "--sizes", "1k", "--queries", "40"]
    cmd += ["--single-queries", "10", "--dense-docs", "0", "--skip-server", "--skip-rank-bm25"]
    cmd += ["--lucene-python", str(tmp_path / "none" / "python"), "--work", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Lucene not installed: no ratio" in out.stdout
    assert "ratio" not in out.stdout.replace("Lucene not installed: no ratio", "")
    assert "| 1k |" in out.stdout and (tmp_path / "results.json").exists()
