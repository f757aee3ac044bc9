"""Check the X-Iplm-Peer header of a request that claims to come from a mesh unit.

The request's time is read on the asking unit's own clock, as far as its presence showed it (the mesh agent's
clock offsets): offline units' clocks drift, and a unit minutes off must still be served.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable

from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.sign_peer_request import sign_peer_request

_HEADER = re.compile(r"([0-9a-f]{16}):([0-9]{1,15}):([0-9a-f]{64})")


PEER_REQUEST_SKEW_MS = 60_000  # how far a request's time may be from the asking unit's clock as we know it


def _know_no_offset(_node_id: str) -> int | None:
    return None


def verify_peer_request(
    secrets: MeshSecrets,
    header: str | None,
    method: str,
    path: str,
    range_header: str,
    *,
    now_ms: int,
    max_skew_ms: int = PEER_REQUEST_SKEW_MS,
    clock_offset_ms: Callable[[str], int | None] = _know_no_offset,
) -> str:
    """The asking unit's node id; MeshMessageError when the header is missing, forged, or too old or new.

    clock_offset_ms(node): how far that unit's clock is ahead of ours (None: unknown, taken as 0)."""
    match = _HEADER.fullmatch(header or "")
    if match is None:
        raise MeshMessageError("malformed", "this request carries no mesh signature")
    node_id, sent_ms = match[1], int(match[2])
    expected = sign_peer_request(secrets, node_id, method, path, range_header, now_ms=sent_ms)
    if not hmac.compare_digest(expected, match[0]):
        raise MeshMessageError("bad_mac", "the mesh signature does not match: another mesh, or a forged request")
    their_now_ms = now_ms + (clock_offset_ms(node_id) or 0)
    if abs(their_now_ms - sent_ms) > max_skew_ms:
        raise MeshMessageError("stale", "the mesh signature is too old or from the future")
    return node_id
