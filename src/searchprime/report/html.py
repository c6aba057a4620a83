"""Write a :class:`Report` as one self-contained HTML file.

Tables are rendered here (escaped); plots are inline base64 PNGs; the data the viewer needs
is embedded as JSON in ``<script type="application/json">`` blocks, with ``<``, ``>``, ``&``
and the JS line separators written as ``\\uXXXX`` escapes so no trajectory text can end the
block, and lone surrogates replaced. The page fetches nothing at view time.
"""

from __future__ import annotations

import base64
import json
import math
import time
from html import escape
from pathlib import Path
from typing import Any

from searchprime.records import atomic_write_text
from searchprime.report._assets import CSS, JS
from searchprime.report.model import ArmSummary, Report, StageRun, Value
from searchprime.report.plots import png_bytes, report_figures, short_name

__all__ = ["PAGE_SIZE", "render_html", "safe_json", "write_html", "write_report"]

#: Trajectories listed per page of the viewer.
PAGE_SIZE = 50
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _valid_text(text: str) -> str:
    """``text`` with lone surrogates replaced (pairs of surrogates are joined)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def safe_json(obj: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (NaN and infinities become null)."""
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"))
    text = _valid_text(text)
    for ch, rep in _JSON_ESCAPES.items():
        text = text.replace(ch, rep)
    return text


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


# -- tables ------------------------------------------------------------------------------------


def _cell(key: str, v: Value | None, digits: int = 3) -> str:
    if v is None:
        return f'<td data-key="{_e(key)}">-</td>'
    parts = [f'<span class="v">{v.mean:.{digits}f}</span>']
    if v.has_ci:
        parts.append(f'<span class="ci">[{v.lo:.{digits}f}, {v.hi:.{digits}f}]</span>')
    if v.sd is not None:
        parts.append(f'<span class="sd">± {v.sd:.{digits}f} sd</span>')
    return f'<td data-key="{_e(key)}" data-value="{v.mean!r}">{"".join(parts)}</td>'


def _behavior_cell(b: str, arm: ArmSummary) -> str:
    overall, offered = arm.behavior.get(b), arm.behavior_offered.get(b)
    if overall is None:
        return f'<td data-key="behavior.{_e(b)}">-</td>'
    off = "-" if offered is None else f"{offered.mean:.2f}"
    n_off = arm.offered_n.get(b)
    title = f' title="offered on {n_off} tasks"' if n_off is not None else ""
    ci = f'<span class="ci">[{overall.lo:.2f}, {overall.hi:.2f}]</span>' if overall.has_ci else ""
    data = f'data-value="{overall.mean!r}"'
    if offered is not None:
        data += f' data-offered="{offered.mean!r}"'
    return (
        f'<td data-key="behavior.{_e(b)}" {data}{title}><span class="v">{overall.mean:.2f}</span>'
        f' / <span class="o">{off}</span>{ci}</td>'
    )


def _results_table(report: Report) -> str:
    arms = list(report.arms.values())
    ks = sorted({k for a in arms for k in a.pass_at_k})
    has = {
        "entropy": any(a.entropy is not None for a in arms),
        "answered": any(a.answered is not None for a in arms),
    }
    behaviors = [b for b in report.behaviors if any(b in a.behavior for a in arms)]
    head = ["<th>model</th>", '<th title="trajectories">n</th>', "<th>EM</th>", "<th>F1</th>"]
    head += [f"<th>pass@{k}</th>" for k in ks]
    head += ['<th title="mean per-token policy entropy (nats)">entropy</th>'] * has["entropy"]
    head += ["<th>turns</th>", "<th>searches</th>", "<th>valid turns</th>"]
    head += ["<th>answered</th>"] * has["answered"]
    head += [
        f'<th title="{_e(b)}: rate overall / where the task offers the situation">'
        f"{_e(short_name(b))}</th>"
        for b in behaviors
    ]
    rows = []
    for a in arms:
        cells = [f'<td data-key="model">{_e(a.name)}</td>', f'<td data-key="n">{a.n}</td>']
        cells += [_cell("em", a.em), _cell("f1", a.f1)]
        cells += [_cell(f"pass@{k}", a.pass_at_k.get(k)) for k in ks]
        if has["entropy"]:
            cells.append(_cell("entropy", a.entropy))
        cells += [_cell("turns", a.turns, 2), _cell("searches", a.searches, 2)]
        cells.append(_cell("valid_turns", a.valid_turns))
        if has["answered"]:
            cells.append(_cell("answered", a.answered))
        cells += [_behavior_cell(b, a) for b in behaviors]
        rows.append(f'<tr data-model="{_e(a.name)}">{"".join(cells)}</tr>')
    return (
        '<div class="table-wrap"><table class="results" id="results-table"><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        + '<p class="muted">Behavior cells: rate over all trajectories / rate where the task '
        "offers the situation. Bracketed: 95% confidence interval.</p>"
    )


def _ci_text(lo: float | None, hi: float | None) -> str:
    """A signed difference CI, or "-" where there is none."""
    return f"[{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else "-"


def _p_text(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def _section(
    sid: str, title: str, table_id: str, head: str, rows: list[str], note: str = ""
) -> str:
    """A titled section holding one results table (``head``: the header cells) and an
    optional muted note under it."""
    note_html = f'<p class="muted">{note}</p>' if note else ""
    return (
        f'<section id="{sid}"><h2>{title}</h2><div class="table-wrap">'
        f'<table class="results" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{note_html}</section>"
    )


def _comparisons_table(report: Report) -> str:
    if not report.comparisons:
        return ""
    rows = []
    for c in report.comparisons:
        ci, p = _ci_text(c.lo, c.hi), _p_text(c.p_value)
        gl = "-" if c.gained is None else f"{c.gained} / {c.lost}"
        rows.append(
            f"<tr><td>{_e(c.b)} vs {_e(c.a)}</td><td>{_e(c.metric)}</td>"
            f'<td data-key="delta">{c.delta:+.3f}</td><td>{ci}</td><td>{gl}</td>'
            f"<td>{p}</td><td>{'-' if c.n is None else c.n}</td><td>{_e(c.source)}</td></tr>"
        )
    head = (
        "<th>models</th><th>metric</th><th>Δ (b − a)</th><th>95% CI</th><th>gained / lost</th>"
        "<th>McNemar p</th><th>tasks</th><th>source</th>"
    )
    return _section("comparisons", "Paired comparisons", "comparisons-table", head, rows)


def _annotators_table(report: Report) -> str:
    """Rules (cue phrases) vs grounded (moves) rates per model and behavior, with kappa."""
    arms = [a for a in report.arms.values() if a.grounded]
    if not arms:
        return ""
    behaviors = [b for b in report.behaviors if any(b in a.grounded for a in arms)]
    head = "".join(f'<th title="{_e(b)}">{_e(short_name(b))}</th>' for b in behaviors)
    rows = []
    for a in arms:
        cells = [f'<td data-key="model">{_e(a.name)}</td>']
        for b in behaviors:
            said, did = a.behavior.get(b), a.grounded.get(b)
            agree = a.agreement.get(b) or {}
            kappa = agree.get("kappa")
            k = "κ -" if kappa is None else f"κ {kappa:+.2f}"
            cells.append(
                f'<td data-key="{_e(b)}">'
                f'<span class="v">{"-" if said is None else f"{said.mean:.2f}"}</span> / '
                f'<span class="g">{"-" if did is None else f"{did.mean:.2f}"}</span> '
                f'<span class="ci">{k}</span></td>'
            )
        rows.append(f'<tr data-model="{_e(a.name)}">{"".join(cells)}</tr>')
    note = (
        "Each cell: rate by the rules annotator (the teachers' cue phrases) / rate by the "
        "action-grounded annotator (searches, hits and world facts only), and Cohen's kappa "
        "between them. A model that says the words without making the moves has a high first "
        "number and a low second."
    )
    return _section(
        "annotators",
        "What the models said vs what they did",
        "annotators-table",
        f"<th>model</th>{head}",
        rows,
        note,
    )


def _failures_table(report: Report) -> str:
    """Per model, the share of trajectories in each failure mode (modes no model shows hidden)."""
    arms = [a for a in report.arms.values() if a.failures and sum(a.failures.values())]
    if not arms:
        return ""
    modes = [m for m in arms[0].failures if any(a.failures.get(m) for a in arms)]
    head = "".join(f"<th>{_e(m.replace('_', ' '))}</th>" for m in modes)
    rows = []
    for a in arms:
        total = sum(a.failures.values())
        cells = "".join(
            f'<td data-key="{_e(m)}" title="{a.failures.get(m, 0)} of {total}">'
            f"{a.failures.get(m, 0) / total:.2f}</td>"
            for m in modes
        )
        rep = "-" if a.repeated_searches is None else f"{a.repeated_searches:.2f}"
        rows.append(
            f'<tr data-model="{_e(a.name)}"><td data-key="model">{_e(a.name)}</td>{cells}'
            f'<td data-key="repeated">{rep}</td></tr>'
        )
    note = (
        "Each trajectory in its first matching mode: looped = no answer after sending one query "
        "three or more times; out of turns = no answer, searching different things; plan error "
        "= answered an intermediate entity of the question's own chain; overshot = searched the "
        "answer itself, then answered past it; near duplicate / low authority = followed the "
        "distractor entity / the less reliable source; wrong subject = a value a hit stated for "
        "an entity off the chain; unsupported = the answer is in no search result. "
        "Repeated searches: the share of searches that resend an earlier query."
    )
    return _section(
        "failures",
        "Why answers were wrong",
        "failures-table",
        f"<th>model</th>{head}<th>repeated searches</th>",
        rows,
        note,
    )


def _claims_table(report: Report) -> str:
    if not report.claims:
        return ""
    rows = []
    for c in report.claims:
        ci, p = _ci_text(c.lo, c.hi), _p_text(c.p_value)
        ratio = "-" if c.ratio is None else f"{c.ratio:.2f}×"
        rows.append(
            f"<tr><td>{_e(c.statement)}</td><td>{_e(c.model)} vs {_e(c.against)}</td>"
            f'<td data-key="delta">{c.delta:+.3f}</td><td>{ci}</td><td>{ratio}</td><td>{p}</td>'
            f'<td data-key="verdict">{_e(c.verdict)}</td></tr>'
        )
    head = (
        "<th>claim</th><th>models</th><th>ΔEM</th><th>95% CI</th><th>ratio</th>"
        "<th>McNemar p</th><th>verdict</th>"
    )
    return _section("claims", "The paper's claims", "claims-table", head, rows)


def _num(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else _e(x if x is not None else "-")


def _rl_table(report: Report) -> str:
    arms = [a for a in report.arms.values() if a.rl]
    if not arms:
        return ""
    keys = list(dict.fromkeys(k for a in arms for k in a.rl))
    rows = "".join(
        f"<tr><td>{_e(a.name)}</td>"
        + "".join(f"<td>{_num(a.rl.get(k))}</td>" for k in keys)
        + "</tr>"
        for a in arms
    )
    return (
        '<h3>RL runs</h3><div class="table-wrap"><table class="results" id="rl-table"><thead>'
        "<tr><th>model</th>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _passes(row: StageRun) -> str:
    return f"{row.passes} (+{row.revisits} cached)" if row.revisits else str(row.passes)


def _stages_table(report: Report) -> str:
    """Where each stage ran, over every run of a study that spanned several."""
    if not report.stages:
        return ""
    rows = [
        f"<tr><td>{_e(r.stage)}</td><td>{'done' if r.done else 'unfinished'}</td>"
        f"<td>{_duration(r.seconds)}</td><td>{_passes(r)}</td><td>{_e(', '.join(r.hosts))}</td>"
        f"<td>{_e(', '.join(r.cpu_models))}</td><td>{_e(', '.join(r.commits))}</td>"
        f"<td>{_e(r.first_start or '-')}</td><td>{_e(r.last_end or '-')}</td></tr>"
        for r in report.stages
    ]
    total = sum(r.seconds for r in report.stages)
    return _section(
        "stages",
        f"Where it ran ({_duration(total)} of stage time over every run)",
        "stages-table",
        "<th>stage</th><th>state</th><th>time</th><th>passes</th><th>hosts</th><th>CPUs</th><th>commits</th>"
        "<th>first start (UTC)</th><th>last end (UTC)</th>",
        rows,
    )


# -- page --------------------------------------------------------------------------------------


def _plots(report: Report) -> str:
    figs = []
    for key, title, fig in report_figures(report):
        data = base64.b64encode(png_bytes(fig)).decode("ascii")
        figs.append(
            f'<figure id="plot-{key}"><img alt="{_e(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(title)}</figcaption></figure>"
        )
    if not figs:
        return '<p class="muted">No plottable data.</p>'
    return '<div class="plots">' + "".join(figs) + "</div>"


_VIEWER = """
<section id="viewer"><h2>Trajectories</h2>
<div class="filters">
<label>model<select id="f-model"><option value="">all</option></select></label>
<label>outcome<select id="f-correct"><option value="">all</option>
<option value="correct">correct</option>
<option value="incorrect">incorrect</option></select></label>
<label>data source<select id="f-source"><option value="">all</option></select></label>
<label>hops<select id="f-hops"><option value="">all</option></select></label>
<label>trap<select id="f-trap"><option value="">all</option></select></label>
<span id="f-behaviors" class="filters-b" style="display:contents"></span>
<label>text<input id="f-text" type="search" placeholder="task id or question"></label>
</div>
<div class="pager"><button id="prev" type="button">&larr; prev</button>
<span id="page-info"></span><button id="next" type="button">next &rarr;</button>
<span><b id="match-count">0</b> of <span id="total-count">0</span> trajectories match;
click one to open it.</span></div>
<ol class="trajs" id="traj-list"></ol>
</section>
"""


def render_html(report: Report) -> str:
    """The whole page as one string."""
    warnings = "".join(
        f'<p class="warn"><b>{_e(a.name)}</b> looks degenerate: {_e(a.degenerate)}</p>'
        for a in report.arms.values()
        if a.degenerate
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    data = {
        "name": report.name,
        "behaviors": report.behaviors,
        "short": {b: short_name(b) for b in report.behaviors},
        "models": list(report.arms),
        "page_size": PAGE_SIZE,
        "arms": {k: a.model_dump(mode="json", exclude={"rl"}) for k, a in report.arms.items()},
        "comparisons": [c.model_dump(mode="json") for c in report.comparisons],
    }
    trajs = [t.model_dump(mode="json", exclude_none=True) for t in report.trajectories]
    total = report.seconds.get("total")
    took = f" · the run took {total / 60:.1f} min" if total else ""
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>searchprime report: {_e(report.name)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>searchprime report: {_e(report.name)}</h1>
<p class="muted">from {_e(report.source)} · written {time.strftime("%Y-%m-%d %H:%M")}{took} ·
{len(report.trajectories)} trajectories</p>
<nav><a href="#results">results</a><a href="#plots">plots</a>
<a href="#viewer">trajectories</a></nav>
</header>
<main>
<section id="results"><h2>Results</h2>{warnings}{_results_table(report)}{_rl_table(report)}
{f'<ul class="muted notes">{notes}</ul>' if notes else ""}</section>
{_claims_table(report)}
{_comparisons_table(report)}
{_annotators_table(report)}
{_failures_table(report)}
<section id="plots"><h2>Plots</h2>{_plots(report)}</section>
{_stages_table(report)}
{_VIEWER}
</main>
<footer>searchprime · self-contained report: nothing is loaded from the network.</footer>
<script type="application/json" id="report-data">{safe_json(data)}</script>
<script type="application/json" id="traj-data">{safe_json(trajs)}</script>
<script>{JS}</script>
</body></html>
"""
    return _valid_text(doc)


def write_html(report: Report, out: str | Path) -> Path:
    """Write ``report`` to ``out`` (atomically); return the path."""
    out = Path(out)
    atomic_write_text(out, render_html(report))
    return out


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """The HTML report of an ``experiment`` run folder (default ``<run_dir>/report.html``)."""
    from searchprime.report.load import load_run

    return write_html(load_run(run_dir), out or Path(run_dir) / "report.html")
