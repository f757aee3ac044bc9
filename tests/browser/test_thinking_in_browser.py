"""Deep thinking in the web app (Debian's headless Chromium, a 360 px phone, the real default model): a
person turns on "Think deeply", asks an ambiguous question, gets one clarifying question with choices, taps
one, watches the reasoning graph grow, and gets an answer; a clear question is answered without a question
back; stopping mid-thinking keeps the app usable."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from appliance.thinking.clarify_types import CLARIFY_BUDGET

pytestmark = [pytest.mark.browser, pytest.mark.engine]

AMBIGUOUS = "How do I get rid of a bug?"
CLEAR = "What is 12 times 12?"


def _phone(browser_profiles, live_unit):
    page = browser_profiles().new_page()
    page.set_viewport_size({"width": 360, "height": 740})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_unit.url + "/")
    expect(page.locator("#model")).to_have_value("SmolLM2-135M-Instruct-Q4_1")
    page.click("#settings-open")
    switch = page.locator("#think-deeply")
    expect(switch).not_to_be_checked()  # off unless the person turns it on
    switch.check()
    page.fill("#max-tokens", "40")
    page.keyboard.press("Escape")
    return page, errors


def _open_history(page):
    if page.locator("#history-toggle").is_visible():  # a narrow screen folds the chat list away
        page.click("#history-toggle")


def _send(page, text):
    page.fill("#prompt", text)
    page.click("#send")


def _graph_width_fits(reply) -> None:
    box = reply.locator("svg.think-svg").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360


def test_an_ambiguous_question_gets_a_question_with_choices_then_a_tap_gets_the_answer(live_unit, browser_profiles):
    page, errors = _phone(browser_profiles, live_unit)
    _send(page, AMBIGUOUS)
    reply = page.locator("#messages .msg.assistant").last
    # While it analyses: the progress line and the graph, live.
    expect(reply.locator("p.think-progress")).to_be_visible(timeout=30_000)
    expect(reply).to_have_attribute("data-state", "done", timeout=120_000)
    expect(reply).to_have_attribute("data-clarify", "true")
    expect(reply.locator(".content")).to_have_text("Which \u201cbug\u201d do you mean?")
    choices = reply.locator(".clarify-choices button.clarify-choice")
    expect(choices).to_have_text(["an insect", "an error in software"])

    choices.first.click()
    expect(page.locator("#messages .msg.user").last).to_have_text("an insect")
    expect(page.locator(".clarify-choices")).to_have_count(0)  # answered: the choices go
    for _ in range(CLARIFY_BUDGET):
        reply = page.locator("#messages .msg.assistant").last
        nodes = reply.locator("details.thinking svg.think-svg g.think-node")
        expect(nodes.first).to_be_visible(timeout=60_000)
        seen = nodes.count()
        expect(reply).to_have_attribute("data-state", "done", timeout=180_000)
        if reply.get_attribute("data-clarify") != "true":
            break
        # The small model may ask once more (within the budget): the person answers in words.
        _send(page, "the insects in my kitchen")
    assert reply.get_attribute("data-clarify") != "true"
    graph = reply.locator("details.thinking")
    # The graph grew while it thought (candidates, their checks, the answer) and folds under the answer.
    assert graph.locator("g.think-node").count() > seen
    expect(graph.locator("g.think-node[data-kind='candidate']").first).to_be_attached()
    expect(graph.locator("g.think-node[data-kind='answer']")).to_have_count(1)
    expect(graph).not_to_have_attribute("open", "")
    assert reply.locator(".content").inner_text().strip()
    graph.locator("summary").click()
    _graph_width_fits(reply)

    # Reloaded, the chat shows the graph again and no question waits.
    page.reload()
    _open_history(page)
    page.locator("#history li.conv").first.locator(".conv-open").click()
    expect(page.locator("#messages .msg.assistant details.thinking").last).to_be_attached(timeout=10_000)
    expect(page.locator(".clarify-choices")).to_have_count(0)
    assert errors == []


def test_a_clear_question_is_answered_without_a_question_back(live_unit, browser_profiles):
    page, errors = _phone(browser_profiles, live_unit)
    _send(page, CLEAR)
    reply = page.locator("#messages .msg.assistant").last
    expect(reply).to_have_attribute("data-state", "done", timeout=180_000)
    expect(reply).not_to_have_attribute("data-clarify", "true")
    expect(reply.locator("details.thinking g.think-node[data-kind='answer']")).to_have_count(1)
    assert reply.locator(".content").inner_text().strip()
    page.reload()
    page.click("#settings-open")
    expect(page.locator("#think-deeply")).to_be_checked()  # remembered on this phone
    assert errors == []


def test_stopping_mid_thinking_leaves_the_app_ready_for_the_next_question(live_unit, browser_profiles):
    page, errors = _phone(browser_profiles, live_unit)
    _send(page, "Explain how tides work.")
    reply = page.locator("#messages .msg.assistant").last
    expect(reply.locator("p.think-progress")).to_be_visible(timeout=30_000)
    page.click("#stop")
    expect(reply).to_have_attribute("data-state", "cancelled", timeout=10_000)
    expect(reply.locator("p.think-progress")).to_have_count(0)
    expect(page.locator("#send")).to_be_visible()
    assert errors == []
