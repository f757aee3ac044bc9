"""Tell whether a radio can run an access point and an 802.11s mesh point at the same time."""

from __future__ import annotations

from appliance.network.detect_interface_combination import detect_interface_combination
from appliance.network.network_types import RadioCapabilities


def detect_ap_and_mesh_support(radios: tuple[RadioCapabilities, ...], phy: str) -> bool:
    """True when radio `phy` (from read_interface_combinations) supports AP + mesh point in one combination.

    `#{ AP, mesh point } <= 1` does not count: it allows one interface of either type, not both. Both run on
    one channel, which is why the mesh uses the AP's channel. An unknown phy, or a radio listing no
    combinations (single interface only), gives False.
    """
    return detect_interface_combination(radios, phy, ("AP", "mesh point"))
