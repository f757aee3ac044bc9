"""Open a message received from the mesh: check who sent it, where, and that it is new.

No wall clock decides: an offline unit's clock may be minutes or years off, and one that refused messages by
their date silently vanished from the mesh. Freshness is the sender's counter (it only grows); a message can
reach a unit only through the sender's own broker, which takes writes on a unit's topics from that unit's
certificate alone (mutual TLS and the broker's ACL), so nobody else can inject or replay one.
"""

from __future__ import annotations

import dataclasses
import hmac
import json

from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import ENVELOPE_VERSION, MAX_MESSAGE_BYTES, MeshMessage, MeshSecrets
from appliance.mesh.messages.compute_mesh_mac import compute_mesh_mac

_FIELDS = {f.name for f in dataclasses.fields(MeshMessage)}
_MAX_COUNTER = 2**63 - 1
_HEX_DIGITS = set("0123456789abcdef")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_envelope(raw: bytes) -> MeshMessage:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise MeshMessageError("malformed", "a mesh message is a JSON object") from None
    if (
        isinstance(data, dict)
        and "version" in data
        and (not _is_int(data["version"]) or data["version"] != ENVELOPE_VERSION)
    ):
        raise MeshMessageError("malformed", f"mesh message version {data['version']!r} is not supported")
    if not isinstance(data, dict) or set(data) != _FIELDS:
        raise MeshMessageError("malformed", f"a mesh message has exactly the keys {sorted(_FIELDS)}")
    well_formed = (
        isinstance(data["sender"], str)
        and data["sender"] != ""
        and _is_int(data["counter"])
        and 0 <= data["counter"] <= _MAX_COUNTER
        and _is_int(data["sent_at"])
        and isinstance(data["topic"], str)
        and isinstance(data["will"], bool)
        and isinstance(data["payload"], dict)
        and isinstance(data["mac"], str)
        and len(data["mac"]) == 64
        and set(data["mac"]) <= _HEX_DIGITS
    )
    if not well_formed:
        raise MeshMessageError("malformed", "a mesh message field has the wrong type")
    return MeshMessage(**data)


def open_mesh_message(
    secrets: MeshSecrets,
    topic: str,
    raw: bytes,
    replay_state: dict,
) -> tuple[MeshMessage, dict]:
    """(the envelope, new replay state) of `raw` received on `topic`.

    `replay_state` ({sender: last accepted counter}) is not changed: the caller keeps the returned
    state. Raises MeshMessageError: "oversize", "malformed", "bad_mac", "topic_mismatch" or "replay"
    (already accepted: e.g. a retained message re-delivered; ignore it). A will (see mesh_types) is
    checked for MAC and topic only and leaves the state as it was.
    """
    raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MeshMessageError("oversize", f"a mesh message is at most {MAX_MESSAGE_BYTES} bytes")
    message = _parse_envelope(raw)
    try:
        expected = compute_mesh_mac(
            secrets,
            topic=message.topic,
            sender=message.sender,
            counter=message.counter,
            sent_at=message.sent_at,
            will=message.will,
            payload=message.payload,
        )
    except ValueError:  # NaN or Infinity smuggled into the payload: nothing we sealed
        raise MeshMessageError("malformed", "a mesh message payload is plain JSON") from None
    if not hmac.compare_digest(expected, message.mac):
        raise MeshMessageError("bad_mac", "the message's MAC is wrong: forged, corrupted, or from another mesh")
    # Only now, with the envelope authentic, do its fields mean anything.
    if message.topic != topic:
        raise MeshMessageError("topic_mismatch", f"a message sealed for {message.topic!r} arrived on {topic!r}")
    if message.will:
        return message, replay_state
    last = replay_state.get(message.sender)
    if last is not None and message.counter <= last:
        raise MeshMessageError(
            "replay", f"counter {message.counter} of {message.sender!r} was already passed (last accepted: {last})"
        )
    return message, {**replay_state, message.sender: message.counter}
