"""The chat's first load, as a phone's browser gets it over the unit's Wi-Fi: every file, compressed."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.engine]

BUDGET_BYTES = 60 * 1024


def test_the_first_load_of_the_chat_is_under_60_kb_on_the_wire(live_unit, browser_profiles):
    page = browser_profiles().new_page()
    # A phone on the unit's Wi-Fi talks plain HTTP to a non-local address: browsers offer no brotli there.
    page.set_extra_http_headers({"Accept-Encoding": "gzip, deflate"})
    page.goto(live_unit.url + "/", wait_until="networkidle")
    entries = page.evaluate("""() => [
        ...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')
    ].map(e => ({name: e.name, transfer: e.transferSize, body: e.decodedBodySize}))""")
    total = sum(entry["transfer"] for entry in entries)
    unpacked = sum(entry["body"] for entry in entries)
    names = [entry["name"] for entry in entries]
    assert any(name.endswith(".js") for name in names) and any(name.endswith(".css") for name in names)
    assert total < BUDGET_BYTES, f"{total} bytes on the wire: {entries}"
    assert unpacked > 2 * total  # what arrived was compressed, not merely small
