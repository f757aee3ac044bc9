"""Errors of the unit's network setup. Each carries a machine-readable `code` and a human `message`."""
from __future__ import annotations


class NetworkError(Exception):
    """The network could not be applied: "no_interface", "no_batman", "nft_failed", "unshare_failed"."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
