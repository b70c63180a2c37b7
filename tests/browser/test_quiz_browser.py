"""The quiz in a real browser (Chromium via pytest-playwright) against the live server of tests/browser/conftest.py:
one question answered right with the keyboard alone, one answered wrong, the feedback and the score after each,
and a "see it" link that carries its view's parameters. Expected texts come from the quiz content itself."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytest_playwright",
                    reason="pytest-playwright is not installed (pip install -r requirements-dev.txt)")
from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser  # skipped with a reason when /usr/bin/chromium is absent (see conftest.py)

WAIT_MS = 60_000


def quiz():
    """The quiz content, from the repository under test (also when pytest runs from another folder)."""
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.insert(0, root)
    from explorer.quiz_content import QUIZ
    return QUIZ


def open_quiz(page, url: str, qid: str) -> None:
    # Home first: a fresh server's very first script run takes Streamlit's legacy pages/ path (see
    # test_app_browser.py); a visitor normally arrives from Home.
    page.goto(url + "/")
    page.get_by_role("combobox", name="Weights").wait_for(timeout=WAIT_MS)
    page.goto(f"{url}/quiz?q={qid}")
    page.get_by_text(quiz().get(qid).prompt).wait_for(timeout=WAIT_MS)


def score(page) -> str:
    return page.locator('[data-testid="stProgress"]').inner_text()


def option_label(qid: str, key: str) -> str:
    o = quiz().get(qid).option(key)
    return f"{key.upper()}. {o.text}"


def test_one_right_with_the_keyboard_one_wrong_feedback_and_score(page, app_server, screenshot):
    QUIZ = quiz()
    right = QUIZ.get("fp8")
    open_quiz(page, app_server.url, right.id)
    assert "0 right of 0 answered" in score(page)
    # Keyboard only: focus the first option, arrow to the right one, tab to the submit button, press Enter.
    first = page.get_by_role("radio", name=option_label("fp8", "a"))
    first.focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("radio", name=option_label("fp8", "b"))).to_be_checked(timeout=WAIT_MS)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Check answer")).to_be_focused(timeout=WAIT_MS)
    page.keyboard.press("Enter")
    page.get_by_text("Right.", exact=True).wait_for(timeout=WAIT_MS)
    page.get_by_text(right.option("c").why).wait_for(timeout=WAIT_MS)  # why a wrong option is wrong
    page.wait_for_function("() => document.querySelector('[data-testid=\"stProgress\"]')"
                           ".innerText.includes('1 right of 1 answered')", timeout=WAIT_MS)
    link = page.get_by_role("link", name=re.compile("See it: Layer Lab: a real layer over FP8 E4M3"))
    assert "fmt=fp8_e4m3" in link.get_attribute("href") and "gran=tensor" in link.get_attribute("href")
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "quiz_right")

    wrong = QUIZ.get("awq")
    page.get_by_role("combobox", name="Question").click()
    page.get_by_role("option", name=f"{QUIZ.number('awq')}. {wrong.title}").click()
    page.get_by_text(wrong.prompt).wait_for(timeout=WAIT_MS)
    page.get_by_text(option_label("awq", "a")).click()
    page.get_by_role("button", name="Check answer").click()
    page.get_by_text("Not quite.", exact=True).wait_for(timeout=WAIT_MS)
    page.get_by_text("your choice, wrong").wait_for(timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelector('[data-testid=\"stProgress\"]')"
                           ".innerText.includes('1 right of 2 answered')", timeout=WAIT_MS)
    page.get_by_role("button", name=re.compile(f"{QUIZ.number('awq')}. {wrong.title}")).wait_for(timeout=WAIT_MS)
    page.wait_for_url("**q=awq**", timeout=WAIT_MS)
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "quiz_wrong")
