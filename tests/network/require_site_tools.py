"""Fail a namespace site test at once, and say why, when it cannot run here."""

from __future__ import annotations

import os
import shutil

import pytest


def require_site_tools() -> None:
    """Root and iproute2, nftables, util-linux and dnsmasq-base: what a site of namespaces needs."""
    if os.geteuid() != 0:
        pytest.fail(
            "tests/network netns tests need root: they create network namespaces and veths "
            "(run as root, or deselect with -m 'not netns')",
            pytrace=False,
        )
    missing = [
        tool
        for tool in ("ip", "nft", "unshare", "dnsmasq")
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None
    ]
    if missing:
        pytest.fail(
            f"needs iproute2, nftables, util-linux and dnsmasq-base: {', '.join(missing)} not found", pytrace=False
        )
