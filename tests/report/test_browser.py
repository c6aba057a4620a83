"""The report in real headless chromium: no console errors, table = report.json, filters,
trajectory highlights, side by side, pagination, a screenshot.

Never skipped silently: without chromium the ``browser`` fixture fails the test, unless
``SEARCHPRIME_ALLOW_NO_BROWSER=1`` is set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchprime.eval.score import is_correct
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl
from searchprime.report import write_report
from tests.report.browser import severe_logs
from tests.report.synth import write_run

ER = "error_recovery"


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    """The synthetic run's report, opened once for the module (70 tasks x 3 models)."""
    root = tmp_path_factory.mktemp("report") / "run"
    data = write_run(root, n_tasks=70)
    html = write_report(root, root / "report.html")
    browser.get(html.as_uri())
    assert browser.execute_script("return document.body.getAttribute('data-ready')") == "1"
    return browser, root, data


def _css(driver, sel):
    return driver.find_elements("css selector", sel)


def _select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def _reset(driver) -> None:
    for sel in _css(driver, ".filters select"):
        _select(driver, sel.get_attribute("id"), "")


def _count(driver) -> int:
    return int(driver.find_element("id", "match-count").text)


def test_no_console_errors_and_hostile_text_inert(page) -> None:
    driver, _, _ = page
    assert severe_logs(driver) == []
    assert driver.execute_script("return window.__pwned === undefined")
    # the hostile question is shown as text
    _select(driver, "f-model", "base")
    driver.find_element("id", "f-text").send_keys("t00000")
    assert _count(driver) == 1
    assert "</script><script>" in _css(driver, "li.traj .q")[0].text
    driver.find_element("id", "f-text").clear()
    driver.execute_script(
        "var e = document.getElementById('f-text'); e.value = '';"
        "e.dispatchEvent(new Event('input'));"
    )
    _reset(driver)


def test_table_values_equal_report_json(page) -> None:
    driver, _, data = page
    rows = _css(driver, "#results-table tbody tr")
    assert [r.get_attribute("data-model") for r in rows] == list(data["arms"])
    for row in rows:
        arm = data["arms"][row.get_attribute("data-model")]
        for key, digits in (
            ("em", 3),
            ("f1", 3),
            ("valid_turns", 3),
            ("turns", 2),
            ("searches", 2),
            ("answered", 3),
        ):
            cell = row.find_element("css selector", f'td[data-key="{key}"]')
            assert float(cell.get_attribute("data-value")) == arm[key]
            assert cell.find_element("css selector", ".v").text == f"{arm[key]:.{digits}f}"
        n = row.find_element("css selector", 'td[data-key="n"]').text
        assert int(n) == arm["n"]
        for b in BEHAVIORS:
            cell = row.find_element("css selector", f'td[data-key="behavior.{b}"]')
            assert float(cell.get_attribute("data-value")) == arm["behavior"][b]
            assert cell.find_element("css selector", ".v").text == f"{arm['behavior'][b]:.2f}"


def test_filter_incorrect_error_recovery_counts_exactly(page) -> None:
    driver, root, _ = page
    trajs = {
        m: list(read_jsonl(root / "eval" / f"{m}.labelled.jsonl", Trajectory))
        for m in ("base", "primed", "primed+rl")
    }
    want_all = sum(not is_correct(t) and t.labels.has(ER) for ts in trajs.values() for t in ts)
    _reset(driver)
    assert _count(driver) == 210
    _select(driver, "f-correct", "incorrect")
    _select(driver, f"f-b-{ER}", "present")
    assert _count(driver) == want_all > 0
    shown = 0
    while True:  # every page together lists exactly the matches
        shown += len(_css(driver, "li.traj"))
        assert all(m.text == "\u2717" for m in _css(driver, "li.traj .mark"))
        nxt = driver.find_element("id", "next")
        if not nxt.is_enabled():
            break
        nxt.click()
    assert shown == want_all
    _select(driver, "f-model", "primed")
    want = sum(not is_correct(t) and t.labels.has(ER) for t in trajs["primed"])
    assert _count(driver) == want
    _select(driver, f"f-b-{ER}", "absent")
    want = sum(
        not is_correct(t) and t.labels.behaviors[ER].present is False for t in trajs["primed"]
    )
    assert _count(driver) == want
    _select(driver, "f-hops", "2")
    _select(driver, "f-trap", "none")
    tasks = {t["id"]: t["meta"] for t in map(json.loads, (root / "world/tasks/dev.jsonl").open())}
    want = sum(
        not is_correct(t)
        and t.labels.behaviors[ER].present is False
        and tasks[t.task_id]["hops"] == 2
        and not tasks[t.task_id]["traps"]
        for t in trajs["primed"]
    )
    assert _count(driver) == want
    _reset(driver)


def test_open_trajectory_highlights_its_turns_and_compares(page, tmp_path: Path) -> None:
    driver, root, _ = page
    _reset(driver)
    _select(driver, "f-model", "primed")
    _select(driver, f"f-b-{ER}", "present")
    item = _css(driver, "li.traj")[0]
    idx = int(item.get_attribute("data-idx"))
    item.find_element("css selector", "button.traj-head").click()
    body = item.find_element("css selector", ".traj-body")
    task_id = body.find_element("css selector", ".card").get_attribute("data-model")
    assert task_id == "primed"
    view = driver.execute_script(
        f"return JSON.parse(document.getElementById('traj-data').textContent)[{idx}]"
    )
    expected = sorted(
        {k for b, lab in view["labels"].items() if lab["present"] is True for k in lab["turns"]}
    )
    lit = [int(e.get_attribute("data-turn")) for e in _css(item, ".card .turn.hl")]
    assert lit == expected and ER in " ".join(
        e.get_attribute("data-behaviors") for e in _css(item, ".card .turn.hl")
    )
    turns = _css(item, ".card .turn")
    assert len(turns) == len(view["turns"])
    er = item.find_element("css selector", f'ul.labels li[data-behavior="{ER}"]')
    assert view["labels"][ER]["rationale"] in er.text and "<i>" in er.text  # shown as text
    # side by side with another model on the same task
    _select_compare = item.find_element("css selector", "select.compare")
    from selenium.webdriver.support.ui import Select

    Select(_select_compare).select_by_index(1)
    cards = _css(item, ".cols > .card")
    assert len(cards) == 2 and cards[1].get_attribute("data-model") != "primed"
    assert severe_logs(driver) == []
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
