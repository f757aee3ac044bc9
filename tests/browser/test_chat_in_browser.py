"""The web app in Debian's headless Chromium, against a real `iplm serve` with the real default model."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.engine]


def _open_history(page):
    if page.locator("#history-toggle").is_visible():
        page.click("#history-toggle")


def _send(page, text):
    page.fill("#prompt", text)
    page.click("#send")


def test_chat_streams_and_history_survives_reload(live_unit, browser_profiles):
    page = browser_profiles().new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_unit.url + "/")
    expect(page.locator("#model")).to_have_value("SmolLM2-135M-Instruct-Q4_1")

    _send(page, "What is the capital of France?")
    reply = page.locator("#messages .msg.assistant").last
    expect(reply).to_have_attribute("data-state", "done", timeout=60_000)
    answer = reply.locator(".content").inner_text().strip()
    assert answer
    expect(page.locator("#messages .msg.user").last).to_contain_text("What is the capital of France?")

    page.reload()
    _open_history(page)
    item = page.locator("#history li.conv").first
    expect(item).to_contain_text("What is the capital of France?")
    item.locator(".conv-open").click()
    expect(page.locator("#messages .msg.assistant .content").last).to_have_text(answer)
    assert errors == []


def test_another_phone_does_not_see_the_first_ones_chats(live_unit, browser_profiles):
    first = browser_profiles().new_page()
    first.goto(live_unit.url + "/")
    _send(first, "A secret about pineapples.")
    expect(first.locator("#messages .msg.assistant").last).to_have_attribute("data-state", "done", timeout=60_000)
    _open_history(first)
    expect(first.locator("#history li.conv")).not_to_have_count(0)

    second = browser_profiles().new_page()
    second.goto(live_unit.url + "/")
    expect(second.locator("#model")).to_have_value("SmolLM2-135M-Instruct-Q4_1")
    _open_history(second)
    expect(second.locator("#history li.conv")).to_have_count(0)
    assert "pineapples" not in second.content()


def test_stop_button_stops_the_reply(live_unit, browser_profiles):
    page = browser_profiles().new_page()
    page.goto(live_unit.url + "/")
    page.click("#settings-open")
    page.fill("#max-tokens", "1900")
    page.fill("#temperature", "0")
    page.keyboard.press("Escape")
    _send(page, "Count from 1 to 1000, separated by commas.")
    reply = page.locator("#messages .msg.assistant").last
    expect(reply).to_have_attribute("data-state", "streaming", timeout=30_000)
    expect(reply.locator(".content")).not_to_be_empty(timeout=30_000)
    page.click("#stop")
    expect(reply).to_have_attribute("data-state", "cancelled", timeout=10_000)
    expect(page.locator("#send")).to_be_visible()


def test_model_output_cannot_inject_html(live_unit, browser_profiles):
    # Hostile model output, fed to the real built app through its own stream format.
    hostile = (
        '**bold** <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
        "[link](javascript:window.__pwned=3)"
    )
    events = [{"type": "delta", "text": hostile[:20]}, {"type": "delta", "text": hostile[20:]}]
    page = browser_profiles().new_page()

    def fake_reply(route):
        conversation_id = route.request.url.split("/")[-2]
        done = {
            "type": "done",
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "message": {
                "id": 1,
                "role": "assistant",
                "content": hostile,
                "finish_reason": "stop",
                "created_at": "2026-01-01T00:00:00Z",
            },
            "conversation": {
                "id": conversation_id,
                "title": "x",
                "model": "m",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            },
        }
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events + [done])
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route("**/api/conversations/*/messages", fake_reply)
    page.goto(live_unit.url + "/")
    _send(page, "hello")
    reply = page.locator("#messages .msg.assistant").last
    expect(reply).to_have_attribute("data-state", "done", timeout=30_000)
    expect(reply.locator("strong")).to_have_text("bold")  # Markdown still renders
    assert reply.locator("script").count() == 0
    assert reply.locator("[onerror]").count() == 0
    assert all(not (a.get_attribute("href") or "").lower().startswith("javascript") for a in reply.locator("a").all())
    assert page.evaluate("window.__pwned") is None


def test_page_works_with_no_storage_and_no_service_worker(live_unit, browser_profiles):
    page = browser_profiles().new_page()
    # An OS sign-in sheet may give the page no storage at all.
    page.add_init_script("Object.defineProperty(window, 'localStorage', {get() { throw new Error('no storage'); }});")
    page.goto(live_unit.url.replace("127.0.0.1", "localhost") + "/")
    _send(page, "Hi!")
    expect(page.locator("#messages .msg.assistant").last).to_have_attribute("data-state", "done", timeout=60_000)
    # Plain http on a non-loopback name is not a secure context there; here, registration must not be needed.
    manifest = page.evaluate("fetch('/manifest.webmanifest').then(r => r.json())")
    assert manifest["start_url"] == "/" and manifest["icons"]


def test_no_request_leaves_the_unit(live_unit, browser_profiles):
    page = browser_profiles().new_page()
    origins = set()
    page.on("request", lambda request: origins.add(request.url.split("/")[2]))
    page.goto(live_unit.url + "/")
    expect(page.locator("#model")).to_have_value("SmolLM2-135M-Instruct-Q4_1")
    page.wait_for_load_state("networkidle")
    assert origins == {live_unit.url.split("/")[2]}
