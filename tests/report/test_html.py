"""The HTML file: escaping, self-containment, embedded data, the CLI (no browser here)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import typer
from typer.testing import CliRunner

from searchprime.report import load_run, render_html, write_report
from searchprime.report.html import safe_json
from tests.report.synth import HOSTILE, LONE


class _Scan(HTMLParser):
    """Collects script blocks and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self.urls: list[str] = []
        self._in: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "script":
            self._in = a
            self.scripts.append((a, ""))

    def handle_data(self, data):
        if self._in is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = None


def test_safe_json_cannot_end_a_script_block() -> None:
    obj = {"t": HOSTILE, "lone": LONE, "pair": "\ud83d\ude00", "nan": float("nan")}
    text = safe_json(obj)
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    text.encode("utf-8")  # no lone surrogate left
    back = json.loads(text)
    assert back["t"] == HOSTILE and back["nan"] is None
    assert back["lone"] == LONE.replace("\ud800", "\ufffd")
    assert back["pair"] == "\U0001f600"


def test_page_is_self_contained_and_embeds_the_data(run_dir: Path) -> None:
    rep = load_run(run_dir)
    page = render_html(rep)
    page.encode("utf-8")
    scan = _Scan()
    scan.feed(page)
    kinds = [a.get("type") for a, _ in scan.scripts]
    assert kinds == ["application/json", "application/json", None]  # no script src anywhere
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in scan.urls), scan.urls
    assert not re.search(r"https?://(?!\S*example)", page.split("<script")[0])  # no CDN links
    assert HOSTILE not in page and "window.__pwned" not in page.split("<script")[0]
    data = json.loads(scan.scripts[0][1])
    trajs = json.loads(scan.scripts[1][1])
    assert data["models"] == ["base", "primed", "primed+rl"]
    assert len(trajs) == 90 and sum(HOSTILE in t["question"] for t in trajs) == 3
    assert {p: page.count(f'id="plot-{p}"') for p in ("accuracy", "behaviors", "rl")} == {
        "accuracy": 1,
        "behaviors": 1,
        "rl": 1,
    }
    assert 'id="plot-passk"' not in page  # no sampled attempts, no pass@k plot


def test_table_cells_carry_report_json_values(run_dir: Path) -> None:
    raw = json.loads((run_dir / "report.json").read_text())["arms"]
    page = render_html(load_run(run_dir))
    for name, arm in raw.items():
        row = re.search(rf'<tr data-model="{re.escape(name)}">(.*?)</tr>', page).group(1)
        em = re.search(r'data-key="em" data-value="([^"]+)"><span class="v">([^<]+)', row)
        assert float(em.group(1)) == arm["em"] and em.group(2) == f"{arm['em']:.3f}"


def _cli() -> typer.Typer:
    from searchprime.cli import report_cmd

    app = typer.Typer()
    report_cmd.register(app)

    @app.callback()
    def _root() -> None:  # keeps `report` a subcommand, as under `searchprime`
        pass

    return app


def test_cli_writes_the_report(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(_cli(), ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "report.html").stat().st_size > 10_000
    out = tmp_path / "files.html"
    res = runner.invoke(
        _cli(), ["report", str(run_dir / "eval/base.labelled.jsonl"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "30 trajectories" in res.output and out.exists()
    res = runner.invoke(_cli(), ["report", str(run_dir / "eval/base.labelled.jsonl")])
    assert res.exit_code != 0


def test_write_report_for_the_runner(run_dir: Path) -> None:
    path = write_report(run_dir)
    assert path == run_dir / "report.html" and path.read_text().startswith("<!doctype html>")


def test_report_without_trajectories(run_dir: Path) -> None:
    for f in (run_dir / "eval").iterdir():
        f.unlink()
    rep = load_run(run_dir)
    assert rep.trajectories == [] and not rep.comparisons
    assert 'data-key="em"' in render_html(rep)
