"""The service data a unit puts in its BLE advertisement (for an advertiser; bleak only scans)."""

from __future__ import annotations

import re

from appliance.mesh.agent.mesh_agent_types import BLE_PAYLOAD_VERSION

_HEX16 = re.compile(r"[0-9a-f]{16}")


def encode_ble_advertisement(mesh_id: str, node_id: str) -> bytes:
    """13 bytes: version (1), first 4 bytes of the mesh id, the node id (8 bytes)."""
    # Legacy advertising has 31 bytes per packet: service data under a 128-bit UUID takes 18 of them
    # (length, type, UUID), so 13 bytes of data is all that fits. The mesh id is public (mDNS shows it
    # too); 4 bytes tell meshes apart, and a stray match is settled by the broker's password anyway.
    if not _HEX16.fullmatch(mesh_id) or not _HEX16.fullmatch(node_id):
        raise ValueError("mesh_id and node_id are 16 lower-case hex digits")
    return bytes([BLE_PAYLOAD_VERSION]) + bytes.fromhex(mesh_id)[:4] + bytes.fromhex(node_id)
