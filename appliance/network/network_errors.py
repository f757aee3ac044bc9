"""Errors of the unit's network setup. Each carries a machine-readable `code` and a human `message`."""

from __future__ import annotations

from appliance.errors import UnitError


class NetworkError(UnitError):
    """The network could not be applied: "no_interface", "no_batman", "nft_failed", "unshare_failed"."""
