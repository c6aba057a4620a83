"""Where each stage of a study ran: ``<out>/stages.jsonl``, one line per stage start and end.

A long study spans several processes and machines through its cache; the report's stage times
cover only the last run. The ledger keeps every run's: the stage, ``start`` / ``done`` /
``failed`` (a ``start`` with nothing after it is a run that was killed), the time, the host,
its CPU model, count and load, and the code's commit, so a result can say which stages ran
where (two VM kinds' kernels train other bits from the same recipe).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any, Literal

from searchprime.records import iter_json_lines, repair_tail

__all__ = ["LEDGER_FILE", "StageLedger", "code_commit", "cpu_model", "ledger_summary"]

LEDGER_FILE = "stages.jsonl"


@cache
def code_commit() -> str | None:
    """The git commit of the searchprime source in use (None outside a git checkout)."""
    src = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=src,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


@cache
def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


class StageLedger:
    """Appends a line per stage event to ``<out>/stages.jsonl`` (flushed at once: a kill loses
    nothing written before it)."""

    def __init__(self, out: Path):
        self.path = out / LEDGER_FILE
        if self.path.exists():  # a line cut by a kill would glue onto the next one
            repair_tail(self.path)

    def record(
        self,
        stage: str,
        event: Literal["start", "done", "failed"],
        seconds: float | None = None,
    ) -> None:
        row: dict[str, Any] = {
            "stage": stage,
            "event": event,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if seconds is not None:
            row["seconds"] = round(seconds, 1)
        row.update(
            host=platform.node(),
            cpu=cpu_model(),
            cpus=os.cpu_count(),
            loadavg=[round(x, 2) for x in os.getloadavg()],
            commit=code_commit(),
            pid=os.getpid(),
        )
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def summary(self) -> list[dict[str, Any]]:
        """:func:`ledger_summary` of this ledger."""
        return ledger_summary(self.path)


def ledger_summary(path: Path) -> list[dict[str, Any]]:
    """Per stage of the ledger ``path``, in first-start order, over every run: finished or not,
    the seconds spent (finished and failed passes; a killed pass left no time), the passes,
    hosts, CPU models, commits, and when it first started and last ended. Read-only (safe
    beside a run).

    Once a stage is done, a later run enters it only to find its outputs cached: such a pass
    counts in ``revisits``, and its host, commit and seconds are left out, so the row says where
    the work ran. (A stage rerun after its outputs were deleted counts as a revisit too: the
    ledger cannot tell the two apart; a model trained again because a carried study came back
    without its weights is a stage of its own, ``sft <name> again`` / ``rl <run> again``.)"""
    if not path.exists():
        return []
    rows: dict[str, dict[str, Any]] = {}
    for _, ev in iter_json_lines(path):
        name = ev.get("stage")
        if not isinstance(name, str):
            continue
        row = rows.setdefault(
            name,
            {
                "stage": name,
                "done": False,
                "seconds": 0.0,
                "passes": 0,
                "revisits": 0,
                "hosts": [],
                "cpu_models": [],
                "commits": [],
                "first_start": ev.get("at"),
                "last_end": None,
            },
        )
        if row["done"]:
            row["revisits"] += ev.get("event") == "start"
        elif ev.get("event") == "start":
            row["passes"] += 1
            for key, value in (
                ("hosts", ev.get("host")),
                ("cpu_models", ev.get("cpu")),
                ("commits", ev.get("commit")),
            ):
                if value is not None and value not in row[key]:
                    row[key].append(value)
        else:
            row["seconds"] = round(row["seconds"] + float(ev.get("seconds") or 0.0), 1)
            row["last_end"] = ev.get("at")
            row["done"] = ev.get("event") == "done"
    return list(rows.values())
