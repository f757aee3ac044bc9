"""Create a mesh key: the one secret a person carries from unit to unit (typed, pasted or scanned)."""

from __future__ import annotations

import base64
import secrets

from appliance.mesh.key.compute_mesh_key_checksum import compute_mesh_key_checksum
from appliance.mesh.mesh_types import MESH_KEY_BYTES, MESH_KEY_PREFIX


def create_mesh_key(secret: bytes | None = None) -> str:
    """Text form of `secret` (a new random 32-byte secret by default): "iplm1-" + base32, lower case."""
    secret = secrets.token_bytes(MESH_KEY_BYTES) if secret is None else secret
    if not isinstance(secret, bytes) or len(secret) != MESH_KEY_BYTES:
        raise ValueError(f"a mesh key secret is {MESH_KEY_BYTES} bytes")
    # Base32 survives being read aloud, typed on a phone and QR-coded; no padding, case-insensitive.
    body = base64.b32encode(secret + compute_mesh_key_checksum(secret)).decode("ascii").rstrip("=").lower()
    return MESH_KEY_PREFIX + body
