"""Open a message received from the mesh: check who sent it, where, when, and that it is new."""

from __future__ import annotations

import dataclasses
import hmac
import json

from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import ENVELOPE_VERSION, MAX_CLOCK_SKEW_S, MAX_MESSAGE_BYTES, MeshMessage, MeshSecrets
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
    *,
    now: float,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> tuple[str, dict, dict]:
    """(sender, payload, new replay state) of the envelope `raw` received on `topic`.

    `replay_state` ({sender: last accepted counter}) is not changed: the caller keeps the returned
    state. Raises MeshMessageError: "oversize", "malformed", "bad_mac", "topic_mismatch", "future",
    "replay" (already accepted: e.g. a retained message re-delivered; ignore it) or "stale". A will
    (see mesh_types) is checked for MAC, topic and "future" only and leaves the state as it was.
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
    now_ms, skew_ms = int(now * 1000), int(max_skew_s * 1000)
    if message.sent_at > now_ms + skew_ms:
        raise MeshMessageError(
            "future", f"the message is dated {(message.sent_at - now_ms) / 1000:.1f} s ahead of this unit's clock"
        )
    if message.will:
        return message.sender, message.payload, replay_state
    last = replay_state.get(message.sender)
    if last is not None and message.counter <= last:
        raise MeshMessageError(
            "replay", f"counter {message.counter} of {message.sender!r} was already passed (last accepted: {last})"
        )
    if message.sent_at < now_ms - skew_ms:
        raise MeshMessageError("stale", f"the message is {(now_ms - message.sent_at) / 1000:.1f} s old")
    return message.sender, message.payload, {**replay_state, message.sender: message.counter}
