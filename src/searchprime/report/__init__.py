"""The HTML report: a run's results, plots and a trajectory viewer in one offline file.

``load_report`` / ``load_run`` / ``load_files`` build a :class:`Report`; ``write_html`` writes
it; ``write_report(run_dir, out)`` does both for an ``experiment`` run folder. All figures of
the project are drawn by :mod:`searchprime.report.plots`.
"""

from searchprime.report.html import render_html, write_html, write_report
from searchprime.report.load import load_files, load_report, load_run
from searchprime.report.model import ArmSummary, Comparison, Report, ScalingPoint, Value
from searchprime.report.trajview import TrajView, traj_view

__all__ = [
    "ArmSummary",
    "Comparison",
    "Report",
    "ScalingPoint",
    "TrajView",
    "Value",
    "load_files",
    "load_report",
    "load_run",
    "render_html",
    "traj_view",
    "write_html",
    "write_report",
]
