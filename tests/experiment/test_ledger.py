"""The stage ledger says which stages ran where, across every run of a study."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from searchprime.experiment.ledger import (
    LEDGER_FILE,
    StageLedger,
    code_commit,
    cpu_model,
    ledger_summary,
)


def test_the_ledger_keeps_every_pass_of_every_stage(tmp_path):
    ledger = StageLedger(tmp_path)
    ledger.record("world", "start")
    ledger.record("world", "done", 7.04)
    ledger.record("sft base", "start")  # killed: nothing after its start
    ledger.record("sft base", "start")  # resumed by the next run
    ledger.record("sft base", "failed", 30.0)
    ledger.record("sft base", "start")
    ledger.record("sft base", "done", 600.0)
    ledger.record("eval base", "start")
    ledger.record("world", "start")  # the next run finds the world cached
    ledger.record("world", "done", 0.4)
    rows = {r["stage"]: r for r in ledger.summary()}
    assert list(rows) == ["world", "sft base", "eval base"]
    assert rows["world"] == {
        **rows["world"],
        "done": True,
        "seconds": 7.0,
        "passes": 1,
        "revisits": 1,
        "hosts": [platform.node()],
        "cpu_models": [cpu_model()],
    }
    assert rows["sft base"]["passes"] == 3 and rows["sft base"]["seconds"] == 630.0
    assert rows["sft base"]["revisits"] == 0
    assert rows["sft base"]["done"] and not rows["eval base"]["done"]
    assert rows["eval base"]["last_end"] is None
    line = json.loads((tmp_path / LEDGER_FILE).read_text().splitlines()[0])
    assert {"at", "host", "cpu", "cpus", "loadavg", "commit", "pid"} <= set(line)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # the CPU kind, as the kernel names it
        assert line["cpu"] in cpuinfo.read_text() and "\n" not in line["cpu"]
    assert line["commit"] == code_commit()  # this checkout's commit (None outside git)


def test_a_line_cut_by_a_kill_is_repaired_before_the_next_run_appends(tmp_path):
    StageLedger(tmp_path).record("world", "start")
    with (tmp_path / LEDGER_FILE).open("a") as f:
        f.write('{"stage": "teach')  # the process died mid-write
    ledger = StageLedger(tmp_path)
    ledger.record("world", "done", 1.0)
    assert [r["stage"] for r in ledger.summary()] == ["world"]
    assert ledger.summary()[0]["done"]


def test_the_summary_reads_a_ledger_being_written_without_touching_it(tmp_path):
    StageLedger(tmp_path).record("world", "start")
    with (tmp_path / LEDGER_FILE).open("a") as f:
        f.write('{"stage": "teach')  # the writer is mid-line (or was killed there)
    before = (tmp_path / LEDGER_FILE).read_bytes()
    assert [r["stage"] for r in ledger_summary(tmp_path / LEDGER_FILE)] == ["world"]
    assert (tmp_path / LEDGER_FILE).read_bytes() == before


def test_no_ledger_no_rows(tmp_path):
    assert StageLedger(tmp_path).summary() == []


def test_a_terminated_study_notes_the_stage_it_was_in(tmp_path):
    """SIGTERM (a session's end) ends `searchprime experiment` with 143, and the ledger holds
    the interrupted stage as failed, with the time it ran."""
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "world: {seed: 1, entities: 300, tasks: 900}\n"
        "teachers: {base_pool: 40, prime_pool: 120}\n"
        "sft: {model: tiny, base_n: 6, epochs: 1, trl: {max_steps: 200}}\n"
        "arms: [{name: rand, strategy: random, n: 4}]\n"
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "searchprime", "experiment", str(cfg), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ledger = out / LEDGER_FILE
    try:
        deadline = time.monotonic() + 120
        while '"stage": "sft base", "event": "start"' not in (
            ledger.read_text() if ledger.exists() else ""
        ):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the study never reached its SFT stage"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    rows = {r["stage"]: r for r in StageLedger(out).summary()}
    assert rows["teachers"]["done"] and not rows["sft base"]["done"]
    assert rows["sft base"]["seconds"] >= 1.0 and rows["sft base"]["last_end"] is not None
    events = [json.loads(line)["event"] for line in ledger.read_text().splitlines()]
    assert events[-1] == "failed"
