"""Tell whether a radio can run a given set of interfaces (access points, mesh points) at the same time."""

from __future__ import annotations

from collections import Counter

from appliance.network.network_types import InterfaceCombination, RadioCapabilities


def _fits(combination: InterfaceCombination, wanted: Counter[str]) -> bool:
    if combination.total < sum(wanted.values()) or combination.channels < 1:
        return False
    # cfg80211 lets an interface type appear in one limit group of a combination only, so each wanted
    # interface counts against the one group that names its type.
    for interface_type in wanted:
        if not any(interface_type in types for types, _ in combination.limits):
            return False
    return all(
        sum(count for interface_type, count in wanted.items() if interface_type in types) <= limit
        for types, limit in combination.limits
    )


def detect_interface_combination(radios: tuple[RadioCapabilities, ...], phy: str, wanted: tuple[str, ...]) -> bool:
    """True when radio `phy` (from read_interface_combinations) can run every interface in `wanted` at once.

    `wanted` names `iw list` interface modes, once per interface: ("AP", "AP") is two access points,
    ("AP", "mesh point") an access point beside a mesh point. One interface needs no combination, only the
    mode; more need one "valid interface combination" that holds them all (on one channel at least).
    An unknown phy gives False.
    """
    for radio in radios:
        if radio.phy != phy:
            continue
        if not set(wanted) <= radio.modes:
            return False
        if len(wanted) <= 1:
            return True
        return any(_fits(combination, Counter(wanted)) for combination in radio.combinations)
    return False
