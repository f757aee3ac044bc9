"""Authenticate an HTTP request from one mesh unit to another (piece transfers on the mesh link)."""

from __future__ import annotations

import hashlib
import hmac

from appliance.mesh.mesh_types import MeshSecrets

PEER_AUTH_HEADER = "X-Iplm-Peer"


def sign_peer_request(
    secrets: MeshSecrets, node_id: str, method: str, path: str, range_header: str, *, now_ms: int
) -> str:
    """The X-Iplm-Peer header value: "<node>:<ms>:<hex HMAC-SHA256 over mesh, method, path, range, node, ms>".

    Only units holding the mesh key can make one; the time bounds how long a captured one can be replayed.
    """
    message = "\n".join((secrets.mesh_id, method.upper(), path, range_header or "", node_id, str(now_ms)))
    mac = hmac.new(secrets.message_key, message.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{node_id}:{now_ms}:{mac}"
