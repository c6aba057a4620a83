"""bench/study_record.py turns a study folder (partial or finished) into a results record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "study_record.py"


def _study(tmp_path: Path) -> Path:
    from searchprime.experiment import ExperimentConfig
    from searchprime.experiment.ledger import StageLedger

    out = tmp_path / "study"
    out.mkdir()
    cfg = ExperimentConfig.model_validate({"rl": {"start_from": ["base"]}})
    (out / "experiment.json").write_text(cfg.model_dump_json())
    ledger = StageLedger(out)
    ledger.record("eval base", "start")
    ledger.record("eval base", "done", 900.0)
    arm = {"n": 300, "em": 0.4, "ci95": {"em": [0.34, 0.45]}, "turns": 2.7, "secret_extra": 1,
           "pass_at_k": {"4": {"mean": 0.53}}}  # fmt: skip
    report = {
        "name": "study",
        "arms": {"base": arm},
        "partial": {"after": "base", "models": ["base"]},
        "stages": ledger.summary(),
        "claims": [],
    }
    (out / "report.json").write_text(json.dumps(report))
    return out


def test_a_partial_study_is_recorded_with_its_sizes_and_stages(tmp_path: Path) -> None:
    study = _study(tmp_path)
    dest = tmp_path / "rec.json"
    cmd = [sys.executable, str(BENCH), str(study), "--json", str(dest), "--note", "ran here"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "study (partial, after base); 0.2 h of stage time" in out.stdout
    assert "EM 0.400 [0.340, 0.450]  n 300  pass@4 0.530" in out.stdout
    rec = json.loads(dest.read_text())
    assert rec["models"]["base"]["em"] == 0.4 and "secret_extra" not in rec["models"]["base"]
    assert rec["sizes"]["dev_n"] == 100 and rec["sizes"]["rl"]["tasks"] == 64
    assert rec["stage_seconds"] == 900.0 and rec["notes"] == ["ran here"]
    assert rec["machine"]["cpu_count"] >= 1


def test_a_folder_without_a_report_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1 and "no report.json yet" in out.stderr
