"""End to end: the brainstorm chat panel of the workbench page, served by Voila and driven in
headless Chromium (the server of ``conftest.served``, the browser and helpers of
``test_browser``).

Types the issue's AAPL idea, watches the draft's slots fill while typing, sends it, presses
the chat's Evaluate, reads the score in the Buddy Report, saves the session to the journal
and takes a screenshot to reports/chat-panel.png.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.widgets.conftest import CHAT_USER
from tests.widgets.test_browser import (
    CHROMIUM_FLAGS,
    FIND_CHROMIUM,
    PAGE_READY_MS,
    REPO,
    REPORT_READY_MS,
)

SCREENSHOT = REPO / "reports" / "chat-panel.png"
TYPED = "long AAPL on a pullback to 555"
IDEA = (f"{TYPED}, stop under 540, target 600, risk half a percent, as of 2012-06-01")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_the_chat_panel_fills_the_draft_evaluates_and_saves(
        served: tuple[str, Path], tmp_path: Path) -> None:
    found = subprocess.run(["bash", str(FIND_CHROMIUM), "--find"], capture_output=True,
                           text=True)
    if found.returncode != 0:
        pytest.fail(f"no browser for this test:\n{found.stderr}")
    url, log = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=found.stdout.strip(),
            args=CHROMIUM_FLAGS, headless=True, viewport={"width": 1440, "height": 1000})
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.set_default_timeout(REPORT_READY_MS)
            expect.set_options(timeout=REPORT_READY_MS)
            page.goto(url, wait_until="domcontentloaded", timeout=PAGE_READY_MS)
            try:
                page.wait_for_selector(".tb-chat", timeout=PAGE_READY_MS)
            except Exception:
                pytest.fail(f"the chat panel never rendered:\n{log.read_text()[-3000:]}")
            user = page.locator(".tb-field-user input")
            user.fill(CHAT_USER)  # equity known from 2000 (the served fixture)
            user.press("Tab")  # the form's text widgets sync on change

            chat = page.locator(".tb-chat")
            box = chat.locator(".tb-chat-input input")
            box.press_sequentially(TYPED)  # key by key, as a trader types
            slots = chat.locator(".tb-chat-slots")
            expect(slots.locator(".tb-slot-entry.tb-slot-typing")).to_contain_text("555")
            expect(slots.locator(".tb-slot-symbol.tb-slot-typing")).to_contain_text("AAPL")
            expect(slots.locator(".tb-slot-stop.tb-slot-missing")).to_have_count(1)
            expect(chat.locator(".tb-chat-msg")).to_have_count(0)  # nothing sent yet
            box.fill(IDEA)
            expect(slots.locator(".tb-slot-size.tb-slot-typing")).to_contain_text("0.5%")
            chat.locator(".tb-chat-send").click()
            expect(chat.locator(".tb-chat-assistant")).to_have_count(1)
            expect(chat.locator(".tb-chat-assistant").last).to_contain_text("Noted")
            expect(slots.locator(".tb-slot-target.tb-slot-filled")).to_contain_text("600")
            expect(box).to_have_value("")

            chat.locator(".tb-chat-evaluate").click()
            score = page.locator(".tb-score-value")
            try:
                expect(score).to_have_text(re.compile(r"^\d+/100$"), timeout=REPORT_READY_MS)
            except AssertionError as exc:
                status = page.locator(".tb-app").inner_text()[-1500:]
                pytest.fail(f"no report after the chat's Evaluate: {exc}\npage:\n{status}\n"
                            f"voila log:\n{log.read_text()[-4000:]}")
            reply = chat.locator(".tb-chat-assistant").last
            expect(reply).to_contain_text("Size 33 units")  # 0.5% of 100,000 over 15 points
            expect(reply).to_contain_text(re.compile(r"score \d+/100"))
            expect(page.locator(".tb-header")).to_contain_text("AAPL long 1d as of 2012-06-01")
            expect(page.locator(".tb-issue").first).to_be_visible()

            chat.locator(".tb-chat-note input").fill("waiting for the pullback")
            chat.locator(".tb-chat-save").click()
            expect(chat.locator(".tb-chat-status")).to_contain_text("saved to the journal")
            for words in ("Traceback", "db_path", "BUDDY_DB"):
                assert words not in page.locator("body").inner_text(), words

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
