"""End to end: the workbench page served by Voila, driven in headless Chromium.

The browser is the Chromium or Chrome that scripts/install-chromium.sh finds ($BUDDY_CHROMIUM,
PATH, Playwright's folder, macOS applications; `make test` runs it first, installing Debian's
chromium where apt exists); Playwright drives it through ``executable_path``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.widgets.conftest import REPO, USER

SCREENSHOT = REPO / "reports" / "workbench.png"
CHART_SHOT = REPO / "reports" / "workbench-chart.png"
FIND_CHROMIUM = REPO / "scripts" / "install-chromium.sh"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--no-first-run", "--disable-component-update", "--disable-sync"]
PAGE_READY_MS = 300_000  # kernel started, notebook run, widgets rendered
REPORT_READY_MS = 120_000  # Evaluate clicked -> score and issues shown

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_the_served_page_evaluates_an_idea_and_shows_the_report(
        served: tuple[str, Path], tmp_path: Path) -> None:
    found = subprocess.run(["bash", str(FIND_CHROMIUM), "--find"], capture_output=True,
                           text=True)
    if found.returncode != 0:
        pytest.fail(f"no browser for this test:\n{found.stderr}")
    chromium = found.stdout.strip()
    url, log = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium,
            args=CHROMIUM_FLAGS, headless=True, viewport={"width": 1440, "height": 1000})
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.set_default_timeout(REPORT_READY_MS)
            # widgets render after the kernel answers: on a loaded machine that can take
            # longer than expect()'s 5 s default
            expect.set_options(timeout=REPORT_READY_MS)
            page.goto(url, wait_until="domcontentloaded", timeout=PAGE_READY_MS)
            try:
                page.wait_for_selector(".tb-form", timeout=PAGE_READY_MS)
            except Exception:
                pytest.fail(f"the workbench form never rendered:\n{log.read_text()[-3000:]}")

            def fill(name: str, value: str) -> None:
                field = page.locator(f".tb-field-{name} input")
                field.fill(value)
                field.press("Tab")  # the text widgets sync on change

            fill("user", USER)
            page.locator(".tb-field-symbol select").select_option("AAPL")
            page.locator(".tb-field-side select").select_option("long")
            page.locator(".tb-field-timeframe select").select_option("1d")
            # a long just under a strong resistance (prior-day high, range high, R1 at
            # 397.70), too large and held too long: more issues than the top ones
            fill("as_of", "2011-12-21")
            expect(page.locator(".tb-field-entry").locator("xpath=..")).to_contain_text(
                "ATR", timeout=REPORT_READY_MS)  # last price and ATR shown beside the entry
            for name, value in (("entry", "396.44"), ("stop", "385"), ("target", "420"),
                                ("size", "2000"), ("horizon", "400")):
                fill(name, value)
            page.locator(".tb-evaluate").click()

            score = page.locator(".tb-score-value")
            try:
                expect(score).to_have_text(re.compile(r"^\d+/100$"), timeout=REPORT_READY_MS)
            except AssertionError as exc:  # say what the kernel and the page said
                status = page.locator(".tb-app").inner_text()[-1500:]
                pytest.fail(f"no report after Evaluate: {exc}\npage:\n{status}\nvoila log:\n"
                            f"{log.read_text()[-4000:]}")
            issues = page.locator(".tb-issue")
            expect(issues.first).to_be_visible()
            assert issues.count() >= 1
            assert issues.first.locator(".tb-issue-title").inner_text().strip()
            evidence = page.locator(".tb-evidence").first
            evidence.locator(".jupyter-widget-Collapse-header").first.click()  # expand
            expect(evidence.locator(".tb-evidence-table")).to_be_visible()
            # the chart is plotly's: the entry line and the level the resistance issue
            # cites, named and labelled
            plot = page.locator(".tb-chart .js-plotly-plot")
            expect(plot).to_be_visible()
            lines = page.evaluate("""() => document.querySelector('.tb-chart .js-plotly-plot')
                .data.filter(t => t.meta).map(t => [t.meta.kind, t.meta.code || '',
                                                    t.meta.price])""")
            assert [kind for kind, _, _ in lines].count("entry") == 1
            cited = [price for kind, code, price in lines
                     if kind == "cited" and code == "ENTRY_UNDER_RESISTANCE"]
            assert len(cited) == 1 and abs(cited[0] - 397.7) < 0.05
            expect(plot.locator(".annotation-text", has_text="prior-day high")).to_have_count(1)
            CHART_SHOT.parent.mkdir(parents=True, exist_ok=True)
            plot.screenshot(path=str(CHART_SHOT))
            # interactive: hovering a bar shows its prices, dragging zooms in
            drag = plot.locator(".nsewdrag").first
            box = drag.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
            expect(plot.locator(".hoverlayer .hovertext").first).to_be_visible()
            before = page.evaluate("""() => document.querySelector('.tb-chart .js-plotly-plot')
                ._fullLayout.xaxis.range.slice()""")
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7,
                            steps=8)
            page.mouse.up()
            page.wait_for_function("""(before) => {
                const r = document.querySelector('.tb-chart .js-plotly-plot')
                    ._fullLayout.xaxis.range;
                return r[1] - r[0] < (before[1] - before[0]) * 0.6; }""", arg=before)
            drag.dblclick()  # double-click: back to the whole chart
            page.wait_for_function("""(before) => {
                const r = document.querySelector('.tb-chart .js-plotly-plot')
                    ._fullLayout.xaxis.range;
                return Math.abs(r[1] - r[0] - (before[1] - before[0])) < 1e-6; }""",
                                   arg=before)
            # the page speaks to a trader: its own intro, no notebook or developer text
            expect(page.locator(".tb-intro")).to_contain_text("Trading Buddy")
            body = page.locator("body").inner_text()
            for words in ("make app", "db_path", "BUDDY_DB", "papermill", "Traceback"):
                assert words not in body, words
            # the top issues as cards, every other one behind the expander
            more = page.locator(".tb-more-issues")
            expect(more).to_be_visible()
            expect(more.locator(".tb-more-issue").first).to_be_hidden()
            more.locator(".jupyter-widget-Collapse-header").first.click()
            expect(more.locator(".tb-more-issue").first).to_be_visible()
            assert issues.count() + more.locator(".tb-more-issue").count() >= 4
            header = page.locator(".tb-header")
            expect(header.locator(".tb-verdict")).to_have_text("FIX FIRST")
            expect(header.locator(".tb-not-checked")).to_contain_text(
                "no exit template to compare with")
            # the chart's drag scrolled the page's container: the screenshot starts at the top
            page.evaluate("""() => { window.scrollTo(0, 0); document.querySelectorAll('*')
                .forEach(e => { if (e.scrollTop) e.scrollTop = 0; }); }""")
            height = page.evaluate(
                "() => Math.ceil(document.querySelector('.tb-app')"
                ".getBoundingClientRect().bottom + window.scrollY) + 40")
            page.set_viewport_size({"width": 1440, "height": max(1000, int(height))})
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
    assert CHART_SHOT.stat().st_size > 10_000
