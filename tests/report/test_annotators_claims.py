"""The report shows both annotators side by side and the paper's claims from report.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from searchprime.report import render_html
from searchprime.report.load import load_files

IV = "information_verification"


def _report_json(tmp_path: Path) -> Path:
    arm = {
        "n": 16,
        "em": 0.0,
        "behavior": {IV: 0.44},
        "behavior_offered": {IV: 0.44},
        "grounded": {
            "behavior": {IV: 0.06},
            "behavior_offered": {IV: 0.06},
            "ci95": {IV: [0, 0.2]},
        },
        "agreement": {
            IV: {"raw": 0.5, "kappa": 0.12, "n": 16, "only_rules": 6, "only_grounded": 0}
        },
        "failures": {"correct": 4, "looped": 10, "overshot": 2, "plan_error": 0, "bad": -1},
        "repeated_searches": 0.52,
    }
    data = {
        "name": "study",
        "arms": {"primed": arm, "base": {"n": 16, "em": 0.31, "behavior": {IV: 0.0}}},
        "claims": [
            {"claim": "behavior_vs_direct", "statement": "behavior->RL beats direct RL",
             "model": "primed+rl", "against": "base+rl", "metric": "em", "delta": -0.3125,
             "ci95": [-0.5625, -0.125], "mcnemar_p": 0.0625, "ratio": 0.0, "verdict": "reversed",
             "n": 16},
            {"statement": "no verdict: skipped", "delta": 0.1},
        ],
    }  # fmt: skip
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    return path


def test_both_annotators_and_the_claims_reach_the_page(tmp_path: Path) -> None:
    report = load_files([_report_json(tmp_path)])
    primed = report.arms["primed"]
    assert primed.grounded[IV].mean == 0.06 and primed.grounded[IV].hi == 0.2
    assert primed.agreement[IV]["only_rules"] == 6
    assert [c.verdict for c in report.claims] == ["reversed"]
    page = render_html(report)
    table = re.search(r'<table[^>]*id="annotators-table".*?</table>', page, re.S).group(0)
    assert 'data-model="primed"' in table and 'data-model="base"' not in table  # base: no labels
    assert '<span class="v">0.44</span> / <span class="g">0.06</span>' in table
    assert "κ +0.12" in table
    claims = re.search(r'<table[^>]*id="claims-table".*?</table>', page, re.S).group(0)
    assert "behavior-&gt;RL beats direct RL" in claims and "primed+rl vs base+rl" in claims
    assert "-0.312" in claims and "[-0.562, -0.125]" in claims and "reversed" in claims
    assert "no verdict" not in claims


def test_a_report_without_them_has_no_empty_sections(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"arms": {"base": {"n": 2, "em": 0.5}}}))
    page = render_html(load_files([path]))
    assert 'id="annotators-table"' not in page and 'id="claims-table"' not in page
    assert 'id="failures-table"' not in page


def test_failure_modes_reach_the_page(tmp_path: Path) -> None:
    report = load_files([_report_json(tmp_path)])
    primed = report.arms["primed"]
    assert primed.failures == {"correct": 4, "looped": 10, "overshot": 2, "plan_error": 0}
    assert primed.repeated_searches == 0.52 and report.arms["base"].failures == {}
    page = render_html(report)
    table = re.search(r'<table[^>]*id="failures-table".*?</table>', page, re.S).group(0)
    assert 'data-model="primed"' in table and 'data-model="base"' not in table
    assert "<th>looped</th>" in table and "plan error" not in table  # no model shows it
    assert '<td data-key="looped" title="10 of 16">0.62</td>' in table
    assert '<td data-key="repeated">0.52</td>' in table


def test_where_each_stage_ran_reaches_the_page(tmp_path: Path) -> None:
    """A study spanning runs: its stage ledger becomes a table; bad rows are dropped."""
    path = tmp_path / "report.json"
    stages = [
        {"stage": "sft base", "done": True, "seconds": 3240.0, "passes": 2, "revisits": 3,
         "hosts": ["vm-a", 7], "cpu_models": ["AMD EPYC", "Intel Xeon <AMX>"],
         "commits": ["b99232d"], "first_start": "2026-11-30T21:10:00Z",
         "last_end": "2026-11-30T22:05:00Z"},
        {"stage": "eval <base>", "done": False, "seconds": "x", "passes": True},
        {"seconds": 5.0},
        "junk",
    ]  # fmt: skip
    path.write_text(json.dumps({"arms": {"base": {"n": 2, "em": 0.5}}, "stages": stages}))
    report = load_files([path])
    assert [s.stage for s in report.stages] == ["sft base", "eval <base>"]
    assert report.stages[0].hosts == ["vm-a"] and report.stages[1].seconds == 0.0
    assert report.stages[0].cpu_models == ["AMD EPYC", "Intel Xeon <AMX>"]
    assert report.stages[1].cpu_models == []  # rows from before the field
    assert report.stages[1].passes == 0 and report.stages[0].revisits == 3
    page = render_html(report)
    table = re.search(r'<section id="stages">.*?</section>', page, re.S).group(0)
    assert "54 min of stage time over every run" in table
    row = (
        "<td>sft base</td><td>done</td><td>54 min</td><td>2 (+3 cached)</td><td>vm-a</td>"
        "<td>AMD EPYC, Intel Xeon &lt;AMX&gt;</td><td>b99232d</td>"
    )
    assert row in table
    assert "<td>eval &lt;base&gt;</td><td>unfinished</td>" in table
    path.write_text(json.dumps({"arms": {"base": {"n": 2, "em": 0.5}}}))
    assert 'id="stages"' not in render_html(load_files([path]))
