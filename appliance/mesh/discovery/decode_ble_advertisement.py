"""Decide whether a BLE advertisement is a unit of our mesh, and which."""

from __future__ import annotations

from appliance.mesh.agent.mesh_agent_types import BLE_PAYLOAD_VERSION, BLE_SERVICE_UUID, BleBeacon

_PAYLOAD_BYTES = 13


def decode_ble_advertisement(service_data: dict, *, mesh_id: str, node_id: str | None = None) -> BleBeacon | None:
    """The BleBeacon in bleak's `advertisement_data.service_data` ({uuid: bytes}), or None.

    None: no iplm service data, an unknown version, a wrong length, another mesh, or this unit itself.
    """
    raw = next(
        (
            bytes(value)
            for uuid, value in (service_data or {}).items()
            if isinstance(uuid, str) and uuid.lower() == BLE_SERVICE_UUID
        ),
        None,
    )
    # A newer version may grow the payload: only the version byte is read before deciding.
    if not raw or raw[0] != BLE_PAYLOAD_VERSION or len(raw) != _PAYLOAD_BYTES:
        return None
    mesh_tag, sender = raw[1:5].hex(), raw[5:13].hex()
    if not mesh_id.startswith(mesh_tag) or sender == node_id:
        return None
    return BleBeacon(version=raw[0], mesh_tag=mesh_tag, node_id=sender)
