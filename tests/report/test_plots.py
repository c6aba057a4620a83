"""The one plotting module: each figure only when its data exists."""

from __future__ import annotations

from pathlib import Path

from searchprime.report.model import ArmSummary, Report, ScalingPoint, Value
from searchprime.report.plots import report_figures, rl_curves_figure


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


def test_figures_follow_the_data() -> None:
    rep = Report(name="x", source="-", arms={"a": ArmSummary(name="a", n=3)})
    assert report_figures(rep) == []
    arm = rep.arms["a"]
    arm.em = Value(mean=0.5, lo=0.2, hi=0.8)
    arm.f1 = Value(mean=0.6)
    arm.pass_at_k = {1: Value(mean=0.5), 8: Value(mean=0.9)}
    arm.scaling = [
        ScalingPoint(turns=t, em=Value(mean=t / 10), pass_at_k={4: Value(mean=t / 8)})
        for t in (2, 4, 6)
    ]
    arm.entropy_by_turn = [0.7, 0.6]
    figs = report_figures(rep)
    assert [key for key, _, _ in figs] == ["accuracy", "passk", "scaling", "entropy"]
    acc = figs[0][2]
    assert acc.axes[0].get_title() == "Accuracy by model (95% CI)"
    scaling = figs[2][2].axes[0]
    assert [line.get_label() for line in scaling.get_lines()] == ["a EM", "a pass@4"]


def test_rl_panels_skip_what_was_not_logged() -> None:
    rows = [{"step": s, "reward_mean": 0.1 * s, "em": 0.0, "valid_actions": 1.0} for s in (1, 2)]
    rows[1]["trl"] = {"entropy": 0.4}
    fig = rl_curves_figure({"m+rl": rows})
    assert _titles(fig) == ["reward", "EM", "entropy (nats/token)", "valid-action rate"]
    assert rl_curves_figure({"m": [{"step": 1}]}) is None


def test_behavior_stats_plots_come_from_here() -> None:
    from searchprime.behaviors import stats
    from searchprime.report import plots

    assert "matplotlib" not in Path(stats.__file__).read_text()  # no second plotting copy
    assert plots.plot_behavior_stats.__module__ == "searchprime.report.plots"
