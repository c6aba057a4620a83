"""Headless Debian chromium driven by selenium (no browser download: the distro's binaries).

``SEARCHPRIME_CHROMIUM`` / ``SEARCHPRIME_CHROMEDRIVER`` override where they are looked for.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "the report's browser test needs Debian's chromium and chromedriver and the selenium "
    "package: apt-get install -y chromium chromium-driver; pip install selenium "
    "(set SEARCHPRIME_ALLOW_NO_BROWSER=1 to skip it instead)"
)


class BrowserMissing(RuntimeError):
    """chromium, chromedriver or selenium is not installed."""


def find_browser() -> tuple[str, str]:
    """Paths of the chromium binary and its chromedriver, or :class:`BrowserMissing`."""
    chromium = os.environ.get("SEARCHPRIME_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    driver = os.environ.get("SEARCHPRIME_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver or not Path(chromium).exists() or not Path(driver).exists():
        raise BrowserMissing(f"chromium={chromium}, chromedriver={driver}: {INSTALL_HINT}")
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        raise BrowserMissing(f"selenium is not installed: {INSTALL_HINT}") from exc
    return chromium, driver


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless chromium WebDriver that records the browser console log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = find_browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # runs as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def severe_logs(driver: Any) -> list[dict]:
    """Console errors (and failed loads) logged by the page so far."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
