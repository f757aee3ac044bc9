"""Fold one BLE sighting into the proximity table: a smoothed RSSI per unit, forgotten when not heard."""

from __future__ import annotations

from appliance.mesh.agent.mesh_agent_types import BleSighting

# RSSI jumps by 10 dB from one packet to the next (fading, bodies, antennas); smooth it.
_WEIGHT = 0.3
# BLE's valid range; 127 means "unknown" in HCI reports, and bleak passes such values through.
_MIN_RSSI, _MAX_RSSI = -127, 20


def update_ble_proximity(proximity: dict, sighting: BleSighting, *, now: float, forget_after_s: float = 30.0) -> dict:
    """{node_id: {"rssi", "ble_address", "seen_at"}} after `sighting`; entries older than forget_after_s go."""
    kept = {node: entry for node, entry in proximity.items() if now - entry["seen_at"] <= forget_after_s}
    if (
        isinstance(sighting.rssi, bool)
        or not isinstance(sighting.rssi, int)
        or not _MIN_RSSI <= sighting.rssi <= _MAX_RSSI
    ):
        return kept
    old = kept.get(sighting.node_id)
    rssi = sighting.rssi if old is None else round(old["rssi"] + _WEIGHT * (sighting.rssi - old["rssi"]))
    return {**kept, sighting.node_id: {"rssi": rssi, "ble_address": sighting.ble_address, "seen_at": sighting.seen_at}}
