"""The MAC of a mesh message."""

from __future__ import annotations

import hashlib
import hmac
import json

from appliance.mesh.mesh_types import ENVELOPE_VERSION, MeshSecrets


def compute_mesh_mac(
    secrets: MeshSecrets, *, topic: str, sender: str, counter: int, sent_at: int, will: bool, payload: dict
) -> str:
    """Hex HMAC-SHA256 over the canonical encoding of the message's fields (raises ValueError for NaN)."""
    # Canonical: a JSON array in a fixed order, sorted keys, no spaces, ASCII only. Both sides run the
    # same json module, and floats and strings survive a JSON round trip exactly, so the receiver
    # re-encodes the very bytes the sender hashed. The mesh id binds the MAC to this mesh.
    fields = ["iplm mesh message", ENVELOPE_VERSION, secrets.mesh_id, topic, sender, counter, sent_at, will, payload]
    encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hmac.new(secrets.message_key, encoded.encode("ascii"), hashlib.sha256).hexdigest()
