"""Check the X-Iplm-Peer header of a request that claims to come from a mesh unit."""

from __future__ import annotations

import hmac
import re

from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.sign_peer_request import sign_peer_request

_HEADER = re.compile(r"([0-9a-f]{16}):([0-9]{1,15}):([0-9a-f]{64})")


PEER_REQUEST_SKEW_MS = 60_000  # how far a request's time may be from the answering unit's clock


def verify_peer_request(
    secrets: MeshSecrets,
    header: str | None,
    method: str,
    path: str,
    range_header: str,
    *,
    now_ms: int,
    max_skew_ms: int = PEER_REQUEST_SKEW_MS,
) -> str:
    """The asking unit's node id; MeshMessageError when the header is missing, forged, or too old or new."""
    match = _HEADER.fullmatch(header or "")
    if match is None:
        raise MeshMessageError("malformed", "this request carries no mesh signature")
    node_id, sent_ms = match[1], int(match[2])
    expected = sign_peer_request(secrets, node_id, method, path, range_header, now_ms=sent_ms)
    if not hmac.compare_digest(expected, match[0]):
        raise MeshMessageError("bad_mac", "the mesh signature does not match: another mesh, or a forged request")
    if abs(now_ms - sent_ms) > max_skew_ms:
        raise MeshMessageError("stale", "the mesh signature is too old or from the future")
    return node_id
