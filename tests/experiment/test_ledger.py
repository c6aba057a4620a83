"""The stage ledger says which stages ran where, across every run of a study."""

from __future__ import annotations

import json
import platform

from searchprime.experiment.ledger import LEDGER_FILE, StageLedger, code_commit


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
    rows = {r["stage"]: r for r in ledger.summary()}
    assert list(rows) == ["world", "sft base", "eval base"]
    assert rows["world"] == {
        **rows["world"],
        "done": True,
        "seconds": 7.0,
        "passes": 1,
        "hosts": [platform.node()],
    }
    assert rows["sft base"]["passes"] == 3 and rows["sft base"]["seconds"] == 630.0
    assert rows["sft base"]["done"] and not rows["eval base"]["done"]
    assert rows["eval base"]["last_end"] is None
    line = json.loads((tmp_path / LEDGER_FILE).read_text().splitlines()[0])
    assert {"at", "host", "cpus", "loadavg", "commit", "pid"} <= set(line)
    assert line["commit"] == code_commit()  # this checkout's commit (None outside git)


def test_a_line_cut_by_a_kill_is_repaired_before_the_next_run_appends(tmp_path):
    StageLedger(tmp_path).record("world", "start")
    with (tmp_path / LEDGER_FILE).open("a") as f:
        f.write('{"stage": "teach')  # the process died mid-write
    ledger = StageLedger(tmp_path)
    ledger.record("world", "done", 1.0)
    assert [r["stage"] for r in ledger.summary()] == ["world"]
    assert ledger.summary()[0]["done"]


def test_no_ledger_no_rows(tmp_path):
    assert StageLedger(tmp_path).summary() == []
