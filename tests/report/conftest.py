"""Fixtures for report tests: a synthetic run folder and a headless chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.report.browser import BrowserMissing, chromium, find_browser
from tests.report.synth import write_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder: 30 tasks, models base / primed / primed+rl, RL steps for primed."""
    write_run(tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium; missing, it fails the test unless SEARCHPRIME_ALLOW_NO_BROWSER=1."""
    try:
        find_browser()
    except BrowserMissing as exc:
        if os.environ.get("SEARCHPRIME_ALLOW_NO_BROWSER") == "1":
            pytest.skip(f"SEARCHPRIME_ALLOW_NO_BROWSER=1: {exc}")
        pytest.fail(str(exc), pytrace=False)
    with chromium() as driver:
        yield driver
