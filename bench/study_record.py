"""Record where a study stands: its report's headline numbers, sizes and stage ledger as JSON.

A study such as ``bench/study.yaml`` spans several sessions on a 2-core CPU; after each one,

    .venv/bin/python bench/study_record.py runs/paper --json bench/results/study_paper_cpu.json

writes what it has measured so far (``report.json``, partial or final), the sizes it runs at
(``experiment.json``), every stage's time, passes, hosts and commits (``stages.jsonl``, read as
it stands, also beside the running study), and
this machine and commit. Prints the table of models and the paper's claims.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl import machine_meta  # noqa: E402  (bench/rl.py, the bench scripts' shared machine card)

#: What the record keeps of each model's report row.
ROW_KEYS = (
    "n", "em", "f1", "ci95", "turns", "searches", "answered", "pass_at_k", "maj_at_k", "entropy",
    "behavior", "behavior_offered", "grounded", "failures", "repeated_searches", "rl",
    "degenerate",
)  # fmt: skip


def _sizes(exp: dict[str, Any]) -> dict[str, Any]:
    rl = exp.get("rl") or {}
    return {
        "world": exp.get("world"),
        "teachers": exp.get("teachers"),
        "sft": {k: (exp.get("sft") or {}).get(k) for k in ("model", "base_n", "epochs")},
        "arms": {a["name"]: a.get("n") for a in exp.get("arms") or []},
        "dev_n": (exp.get("eval") or {}).get("dev_n"),
        "samples": {k: (exp.get("eval") or {}).get(k) for k in ("samples", "samples_tasks")},
        "rl": {
            k: rl.get(k)
            for k in ("tasks", "max_steps", "tasks_per_step", "num_generations", "learning_rate")
        }
        | {"rewards": rl.get("rewards")},
    }


def record(study: Path, notes: list[str] | None = None) -> dict[str, Any]:
    """The record of the study folder ``study`` (``notes``: what the ledger cannot know)."""
    from searchprime.experiment.ledger import LEDGER_FILE, ledger_summary

    report = json.loads((study / "report.json").read_text())
    exp = json.loads((study / "experiment.json").read_text())
    # the ledger itself, not the report's copy (written only after each evaluated model)
    stages = ledger_summary(study / LEDGER_FILE)
    return {
        "bench": "study_record",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "study": str(study),
        "name": report.get("name"),
        "partial": report.get("partial"),
        "sizes": _sizes(exp),
        "models": {
            name: {k: row[k] for k in ROW_KEYS if k in row}
            for name, row in (report.get("arms") or {}).items()
        },
        "comparisons": report.get("comparisons") or [],
        "claims": report.get("claims") or [],
        "stages": stages,
        "stage_seconds": round(sum(s.get("seconds") or 0.0 for s in stages), 1),
        "notes": notes or [],
        "machine": machine_meta(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="An experiment output folder (holds report.json).")
    ap.add_argument("--json", type=Path, help="Write the record here.")
    ap.add_argument("--note", action="append", help="A note kept in the record (repeatable).")
    args = ap.parse_args()
    if not (args.study / "report.json").exists():
        sys.exit(f"{args.study}: no report.json yet (no model has been evaluated)")
    rec = record(args.study, args.note)
    state = f"partial, after {rec['partial']['after']}" if rec["partial"] else "finished"
    print(f"{rec['name']} ({state}); {rec['stage_seconds'] / 3600:.1f} h of stage time")
    for name, row in rec["models"].items():
        lo, hi = (row.get("ci95") or {}).get("em", [None, None])
        ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
        p4 = (row.get("pass_at_k") or {}).get("4", {}).get("mean")
        extra = f"  pass@4 {p4:.3f}" if p4 is not None else ""
        print(f"  {name:24s} EM {row.get('em', float('nan')):.3f}{ci}  n {row.get('n')}{extra}")
    for c in rec["claims"]:
        print(f"  claim: {c['statement']}: {c['verdict']} ({c['delta']:+.3f})")
    if args.json:
        args.json.write_text(json.dumps(rec, indent=2) + "\n")
        print(f"-> {args.json}")


if __name__ == "__main__":
    main()
