"""The browser test fails, not skips, when chromium is missing (unless explicitly allowed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(allow: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SEARCHPRIME_ALLOW_NO_BROWSER"}
    env["SEARCHPRIME_CHROMIUM"] = "/nonexistent/chromium"
    if allow:
        env["SEARCHPRIME_ALLOW_NO_BROWSER"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rfs",
            "tests/report/test_browser.py::test_table_values_equal_report_json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_browser_fails_with_the_install_hint() -> None:
    res = _run(allow=False)
    assert res.returncode == 1, res.stdout
    assert "1 error" in res.stdout and "apt-get install -y chromium chromium-driver" in res.stdout


def test_missing_browser_skips_only_when_allowed() -> None:
    res = _run(allow=True)
    assert res.returncode == 0, res.stdout
    assert "1 skipped" in res.stdout and "SEARCHPRIME_ALLOW_NO_BROWSER=1" in res.stdout
