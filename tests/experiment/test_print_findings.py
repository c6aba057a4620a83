"""`experiment` prints each paired comparison, each paper claim with its verdict, and warnings."""

from __future__ import annotations

import io

from rich.console import Console

from searchprime.cli.experiment_cmd import print_findings


def test_claims_comparisons_and_warnings_are_printed() -> None:
    report = {
        "arms": {"direct-rl": {"rl": {}}, "behavior-rl": {"rl": {}, "degenerate": "loops [x]"}},
        "comparisons": [
            {"model": "behavior-rl", "against": "behavior", "delta": 0.05, "ci95": [0.01, 0.09],
             "gained": 12, "lost": 2, "mcnemar_p": 0.013, "n": 300},
        ],
        "claims": [
            {"statement": "behavior priming then RL beats direct RL", "model": "behavior-rl",
             "against": "direct-rl", "delta": 0.04, "ratio": 1.12, "verdict": "confirmed"},
            {"statement": "wrong answers prime as well", "model": "behavior-incorrect-rl",
             "against": "behavior-rl", "delta": -0.01, "ratio": None, "verdict": "not confirmed"},
        ],
    }  # fmt: skip
    buf = io.StringIO()
    print_findings(Console(file=buf, width=300, color_system=None), report)
    text = buf.getvalue()
    assert (
        "behavior-rl vs behavior: EM +0.050 (paired 95% CI +0.010..+0.090; 12 gained, 2 lost; "
        "McNemar p 0.013) on 300 dev tasks"
    ) in text
    assert (
        "claim: behavior priming then RL beats direct RL (behavior-rl vs direct-rl): confirmed; "
        "EM +0.040, ratio 1.12x"
    ) in text
    assert "(behavior-incorrect-rl vs behavior-rl): not confirmed; EM -0.010, ratio -" in text
    assert "WARNING: behavior-rl looks degenerate: loops [x]" in text  # markup escaped
