"""Headless Chromium (Debian's) for the browser tests: a fresh profile per phone."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import sync_playwright

from appliance.portal.build_webui_blueprint import WEBUI_DIST

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this project's machines need: no sandbox as root, and no background traffic to anywhere.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def browser_profiles(tmp_path_factory):
    """open_profile() starts Chromium with a fresh --user-data-dir: a new, separate phone each time."""
    assert (WEBUI_DIST / "index.html").is_file(), "web app not built: run scripts/dev setup (npm run build in webui/)"
    contexts = []
    with sync_playwright() as playwright:

        def open_profile():
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("profile")),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=PHONE,
                is_mobile=True,
                has_touch=True,
            )
            contexts.append(context)
            return context

        yield open_profile
        for context in contexts:
            context.close()
