"""Fold one BLE sighting into the proximity table: a smoothed RSSI per unit, forgotten when not heard."""

from __future__ import annotations

from appliance.mesh.agent.mesh_agent_types import BleSighting

# RSSI jumps by 10 dB from one packet to the next (fading, bodies, antennas); smooth it.
_WEIGHT = 0.3
# BLE's valid range; 127 means "unknown" in HCI reports, and bleak passes such values through.
_MIN_RSSI, _MAX_RSSI = -127, 20


def update_ble_proximity(proximity: dict, sighting: BleSighting, *, now: float, forget_after_s: float = 30.0) -> dict:
    """{node_id: {"rssi", "ble_address", "seen_at"}} after `sighting`; entries older than forget_after_s go.

    A sighting without a usable RSSI still counts as heard: the entry's rssi stays what it was (None when
    no packet has had one yet).
    """
    kept = {node: entry for node, entry in proximity.items() if now - entry["seen_at"] <= forget_after_s}
    old = kept.get(sighting.node_id)
    rssi = None if old is None else old["rssi"]
    if (
        not isinstance(sighting.rssi, bool)
        and isinstance(sighting.rssi, int)
        and _MIN_RSSI <= sighting.rssi <= _MAX_RSSI
    ):
        rssi = sighting.rssi if rssi is None else round(rssi + _WEIGHT * (sighting.rssi - rssi))
    return {**kept, sighting.node_id: {"rssi": rssi, "ble_address": sighting.ble_address, "seen_at": sighting.seen_at}}
