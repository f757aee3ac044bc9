"""On a unit whose engine cannot run (a build for another CPU), the chat and the admin page say so; the admin
page of a CPU-only unit offers GGUF models and no MLC model. Headless Chromium against the real app, served
by a real HTTP server, whose engine workers die by a real SIGILL."""

from __future__ import annotations

import threading

import httpx
import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from appliance.engine.pool.pool_types import BROKEN_AFTER_DEATHS
from appliance.library.whitelist import WHITELIST
from tests.portal.broken_engine_unit import PIN, open_broken_engine_unit

pytestmark = pytest.mark.browser

GIB = 1024**3


@pytest.fixture
def broken_unit(tmp_path):
    # A CPU-only unit with 2 GiB: llama.cpp only, and not every GGUF fits.
    with open_broken_engine_unit(tmp_path, memory_bytes=2 * GIB) as app:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        for _ in range(BROKEN_AFTER_DEATHS):
            httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=60)
        yield url
        server.shutdown()


def test_the_chat_says_the_engine_cannot_run_before_anyone_types(broken_unit, browser_profiles):
    page = browser_profiles().new_page()
    page.goto(broken_unit + "/")
    banner = page.locator("#error-text")
    expect(banner).to_contain_text("This unit cannot answer chats right now")
    expect(banner).to_contain_text("illegal instruction")


def test_the_admin_page_shows_the_failure_and_offers_only_what_this_unit_runs(broken_unit, browser_profiles):
    page = browser_profiles().new_page()
    page.goto(broken_unit + "/admin")
    page.fill("#pin", PIN)
    page.click("#sign-in")
    expect(page.locator("#engine-failure")).to_be_visible()
    expect(page.locator("#engine-failure")).to_contain_text("The engine cannot run: its worker was killed by SIGILL")
    offered = {e.id for e in WHITELIST if e.engine == "llama.cpp" and e.min_memory_bytes <= 2 * GIB}
    not_offered = {e.id for e in WHITELIST} - offered
    expect(page.locator("#models article.model")).to_have_count(len(offered))
    shown = set(page.locator("#models article.model").evaluate_all("cards => cards.map(c => c.dataset.id)"))
    assert shown == offered and "Qwen2.5-0.5B-Instruct-Q4_K_M" in shown
    assert not any(model_id.endswith("-MLC") for model_id in shown)
    expect(page.locator("#models-not-offered")).to_have_text(
        f"{len(not_offered)} more models need MLC LLM or more memory than this unit has: not offered here."
    )
