"""Tell whether a radio can run an access point and an 802.11s mesh point at the same time."""

from __future__ import annotations

from appliance.network.network_types import InterfaceCombination, RadioCapabilities

_AP, _MESH = "AP", "mesh point"


def _fits_ap_and_mesh(combination: InterfaceCombination) -> bool:
    if combination.total < 2 or combination.channels < 1:
        return False
    for i, (types_i, count_i) in enumerate(combination.limits):
        if _AP not in types_i or count_i < 1:
            continue
        if _MESH in types_i and count_i >= 2:
            return True  # one group holds both: #{ AP, mesh point } <= 8
        for j, (types_j, count_j) in enumerate(combination.limits):
            if j != i and _MESH in types_j and count_j >= 1:
                return True  # separate groups: #{ AP } <= 1, #{ mesh point } <= 1
    return False


def detect_ap_and_mesh_support(radios: tuple[RadioCapabilities, ...], phy: str) -> bool:
    """True when radio `phy` (from read_interface_combinations) supports AP + mesh point in one combination.

    `#{ AP, mesh point } <= 1` does not count: it allows one interface of either type, not both. Both run on
    one channel, which is why the mesh uses the AP's channel. An unknown phy, or a radio listing no
    combinations (single interface only), gives False.
    """
    for radio in radios:
        if radio.phy == phy:
            if not {_AP, _MESH} <= radio.modes:
                return False
            return any(_fits_ap_and_mesh(combination) for combination in radio.combinations)
    return False
