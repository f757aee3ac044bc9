"""The checksum inside a mesh key's text form."""

from __future__ import annotations

import hashlib

from appliance.mesh.mesh_types import MESH_KEY_CHECKSUM_BYTES


def compute_mesh_key_checksum(secret: bytes) -> bytes:
    """First 4 bytes of a labelled SHA-256 of `secret`."""
    # A checksum, not a MAC: it only catches typos before they become a silent "other mesh".
    return hashlib.sha256(b"iplm1 mesh key checksum\0" + secret).digest()[:MESH_KEY_CHECKSUM_BYTES]
