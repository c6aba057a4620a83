"""Report performance: build a report of N synthetic trajectories, open it in headless chromium.

Prints the time to build the HTML, its size, and in the browser: time to first render (page
ready, first page of the list drawn), to filter (incorrect + error_recovery), to open one
trajectory, and to turn a page.

    .venv/bin/python bench/report.py               # 5,000 trajectories (1,250 tasks x 4 models)
    .venv/bin/python bench/report.py --tasks 250   # 1,000

Needs Debian's chromium and chromium-driver and selenium (see tests/report/browser.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.report helpers

from tests.report.browser import chromium  # noqa: E402
from tests.report.synth import write_run  # noqa: E402

from searchprime.report import load_run, write_html  # noqa: E402

MODELS = {"base": (0.3, 0.2), "primed": (0.4, 0.6), "base+rl": (0.4, 0.2), "primed+rl": (0.5, 0.6)}

_FILTER = """
var t0 = performance.now();
var c = document.getElementById('f-correct'); c.value = 'incorrect';
c.dispatchEvent(new Event('change'));
var b = document.getElementById('f-b-error_recovery'); b.value = 'present';
b.dispatchEvent(new Event('change'));
document.body.offsetHeight;  // force layout
return [performance.now() - t0, Number(document.getElementById('match-count').textContent)];
"""
_OPEN = """
var t0 = performance.now();
document.querySelector('li.traj button.traj-head').click();
document.body.offsetHeight;
return [performance.now() - t0, document.querySelectorAll('li.traj .turn').length];
"""
_PAGE = """
var t0 = performance.now();
document.getElementById('next').click();
document.body.offsetHeight;
return performance.now() - t0;
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1250, help="tasks per model (4 models)")
    ap.add_argument("--docs", type=int, default=3, help="passages per search observation")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        write_run(run, n_tasks=args.tasks, models=MODELS, docs=args.docs)
        t_synth = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = load_run(run)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = write_html(rep, run / "report.html")
        t_html = time.perf_counter() - t0
        size = out.stat().st_size
        with chromium() as driver:
            t0 = time.perf_counter()
            driver.get(out.as_uri())
            t_get = time.perf_counter() - t0
            ready_ms = float(driver.execute_script("return document.body.dataset.readyMs"))
            parse_ms = driver.execute_script(
                "var n = performance.getEntriesByType('navigation')[0];"
                "return n.domContentLoadedEventEnd;"
            )
            filter_ms, matches = driver.execute_script(_FILTER)
            open_ms, turns = driver.execute_script(_OPEN)
            page_ms = driver.execute_script(_PAGE)
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    n = len(rep.trajectories)
    print(f"trajectories         {n} ({args.tasks} tasks x {len(MODELS)} models)")
    print(f"synthesize run       {t_synth:.1f} s")
    print(f"load run             {t_load:.1f} s")
    print(f"write HTML           {t_html:.1f} s (plots included)")
    print(f"file size            {size / 1e6:.1f} MB ({size / n / 1e3:.1f} kB per trajectory)")
    print(f"browser: page load   {t_get:.2f} s (driver.get, until the load event)")
    print(
        f"browser: first list  {ready_ms:.0f} ms after navigation start (DOMContentLoaded "
        f"{parse_ms:.0f} ms)"
    )
    print(f"browser: filter      {filter_ms:.1f} ms -> {matches} incorrect + error_recovery")
    print(f"browser: open one    {open_ms:.1f} ms ({turns} turns drawn)")
    print(f"browser: next page   {page_ms:.1f} ms")
    print(f"console errors       {len(errors)}")


if __name__ == "__main__":
    main()
