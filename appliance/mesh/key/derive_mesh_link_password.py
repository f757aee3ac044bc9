"""The password of the Wi-Fi mesh link (802.11s with SAE), derived from the mesh key."""

from __future__ import annotations

from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.derive_hkdf_sha256 import derive_hkdf_sha256

_SALT = b"iplm mesh link v1"
_LABEL = b"802.11s sae password"


def derive_mesh_link_password(key: MeshKey) -> str:
    """64 hex digits, the same on every unit with the key: SAE encrypts the mesh link with it, so a radio
    without the key neither joins the mesh nor reads the MQTT and piece traffic that crosses it."""
    return derive_hkdf_sha256(key.secret, salt=_SALT, info=_LABEL, length=32).hex()
