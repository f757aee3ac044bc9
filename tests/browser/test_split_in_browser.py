"""A split answer in the web app (Debian's headless Chromium, a 360 px phone, the real default model):
the pieces fill in side by side, fold into one line above the answer, and a phone can turn splitting off."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.engine]

QUESTIONS = "1. Why is the sea salty?\n2. What causes thunder?\n3. How do magnets work?"


def _phone(browser_profiles, two_worker_unit):
    page = browser_profiles().new_page()
    page.set_viewport_size({"width": 360, "height": 740})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(two_worker_unit.url + "/")
    expect(page.locator("#model")).to_have_value("SmolLM2-135M-Instruct-Q4_1")
    page.click("#settings-open")
    page.fill("#max-tokens", "150")
    page.fill("#temperature", "0")
    return page, errors


def _send(page, text):
    page.fill("#prompt", text)
    page.click("#send")


def test_the_pieces_fill_in_side_by_side_then_fold_above_the_answer(two_worker_unit, browser_profiles):
    page, errors = _phone(browser_profiles, two_worker_unit)
    page.keyboard.press("Escape")
    _send(page, QUESTIONS)
    reply = page.locator("#messages .msg.assistant").last
    cards = reply.locator(".pieces .piece")
    expect(cards).to_have_count(3, timeout=30_000)
    expect(cards.first.locator("h4")).to_have_text("Why is the sea salty?")
    # Two columns on a 360 px phone: the first two cards side by side, the third below them.
    first, second, third = (cards.nth(i).bounding_box() for i in range(3))
    assert first["y"] == second["y"] and second["x"] > first["x"] + first["width"] - 1
    assert third["y"] > first["y"]
    assert second["x"] + second["width"] <= 360
    expect(reply).to_have_attribute("data-state", "done", timeout=120_000)
    pieces = reply.locator("details.pieces")
    expect(pieces).not_to_have_attribute("open", "")
    expect(pieces.locator("summary")).to_have_text("Answered in 3 pieces side by side, on this unit")
    headings = reply.locator(".content h3")
    expect(headings).to_have_text(["Why is the sea salty?", "What causes thunder?", "How do magnets work?"])
    for i in range(3):  # each card's text is the section under its heading
        card_text = (cards.nth(i).locator(".piece-text").text_content() or "").strip()  # folded: not rendered
        assert card_text and card_text[:40] in reply.locator(".content").inner_text()
    assert errors == []


def test_a_phone_that_turns_splitting_off_gets_whole_answers_and_keeps_the_setting(two_worker_unit, browser_profiles):
    page, errors = _phone(browser_profiles, two_worker_unit)
    switch = page.locator("#split-prompts")
    expect(switch).to_be_checked()
    switch.uncheck()
    page.keyboard.press("Escape")
    _send(page, QUESTIONS)
    reply = page.locator("#messages .msg.assistant").last
    expect(reply).to_have_attribute("data-state", "done", timeout=120_000)
    expect(reply.locator(".pieces")).to_have_count(0)
    page.reload()
    page.click("#settings-open")
    expect(page.locator("#split-prompts")).not_to_be_checked()
    assert errors == []
