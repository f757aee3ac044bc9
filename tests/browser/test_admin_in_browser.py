"""The admin page in headless Chromium against a real unit: PIN, install with progress, serving model."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.admin_unit import PIN

pytestmark = [pytest.mark.browser, pytest.mark.engine]


@pytest.fixture(scope="module")
def unit(admin_unit):
    return admin_unit


def _sign_in(page, url, pin=PIN):
    page.goto(url + "/admin")
    expect(page.locator("#sign-in-view")).to_be_visible()
    page.fill("#pin", pin)
    page.click("#sign-in")


def test_a_wrong_pin_is_refused(unit, browser_profiles):
    page = browser_profiles().new_page()
    _sign_in(page, unit.url, "00000000")
    expect(page.locator("#admin-error")).to_be_visible()
    expect(page.locator("#admin-view")).to_be_hidden()


def test_install_with_progress_then_serve_it(unit, browser_profiles):
    page = browser_profiles().new_page()
    _sign_in(page, unit.url)
    expect(page.locator("#admin-view")).to_be_visible()
    expect(page.locator("#default-model")).to_have_text("SmolLM2-135M-Instruct-Q4_1")
    toy = page.locator("#models article.model[data-id='Toy-MLC']")
    expect(toy).to_have_attribute("data-state", "available")
    unit.source.rate_limit(700_000)  # about 5 s, so the bar is seen moving
    try:
        toy.locator(".install").click()
        bar = toy.locator("progress.progress")
        expect(bar).to_be_visible(timeout=10_000)
        # Percent, speed and time left, e.g. "36% of 3.63 MB · 633 KB/s · 4 s left".
        expect(toy.locator(".progress-text")).to_have_text(re.compile(r"\d+% of .+ · .+B/s · .+ left"), timeout=10_000)
        assert 0 <= float(bar.get_attribute("value") or 0) <= float(bar.get_attribute("max") or 1)
    finally:
        unit.source.rate_limit(None)
    expect(toy).to_have_attribute("data-state", "installed", timeout=60_000)

    smol = page.locator("#models article.model[data-id='Smol-Copy']")
    smol.locator(".install").click()
    expect(smol).to_have_attribute("data-state", "installed", timeout=60_000)
    smol.locator(".use").click()
    expect(page.locator("#default-model")).to_have_text("Smol-Copy", timeout=30_000)

    chat = browser_profiles().new_page()
    chat.goto(unit.url + "/")
    expect(chat.locator("#model")).to_have_value("Smol-Copy")
    chat.fill("#prompt", "Hi!")
    chat.click("#send")
    expect(chat.locator("#messages .msg.assistant").last).to_have_attribute("data-state", "done", timeout=60_000)


def test_cancel_and_remove(unit, browser_profiles):
    page = browser_profiles().new_page()
    _sign_in(page, unit.url)
    toy = page.locator("#models article.model[data-id='Toy-MLC']")
    expect(toy).to_have_attribute("data-state", "installed")
    toy.locator(".remove").click()
    toy.locator(".remove").click()  # the second tap confirms
    expect(toy).to_have_attribute("data-state", "available", timeout=10_000)
    unit.source.rate_limit(200_000)
    try:
        toy.locator(".install").click()
        expect(toy.locator(".cancel")).to_be_visible(timeout=10_000)
        toy.locator(".cancel").click()
        expect(toy).to_have_attribute("data-state", "partial", timeout=10_000)
    finally:
        unit.source.rate_limit(None)
