"""Seal a message for the mesh: the envelope every unit can check and no outsider can forge."""

from __future__ import annotations

import dataclasses
import json

from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import ENVELOPE_VERSION, MAX_MESSAGE_BYTES, MeshMessage, MeshSecrets
from appliance.mesh.messages.compute_mesh_mac import compute_mesh_mac

_MAX_SENDER_CHARS = 128
_MAX_COUNTER = 2**63 - 1


def _check_text(name: str, value, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise ValueError(f"{name} must be printable text of 1 to {limit} characters")


def seal_mesh_message(
    secrets: MeshSecrets, sender_id: str, topic: str, payload: dict, *, now: float, counter: int, will: bool = False
) -> bytes:
    """The JSON envelope (bytes) carrying `payload` from `sender_id` on `topic`.

    `counter` comes from advance_mesh_counter and must grow with every message of this sender;
    will=True marks a last will (sealed at connect, published later by the broker).
    Raises ValueError for bad arguments or a payload that is not plain JSON, MeshMessageError
    "oversize" for an envelope over 256 KiB.
    """
    _check_text("sender_id", sender_id, _MAX_SENDER_CHARS)
    _check_text("topic", topic, 65535)
    if "+" in topic or "#" in topic:
        raise ValueError("a topic to publish on has no wildcards")
    if isinstance(counter, bool) or not isinstance(counter, int) or not 0 <= counter <= _MAX_COUNTER:
        raise ValueError("counter must be an integer from 0 to 2**63-1")
    if not isinstance(payload, dict):
        raise ValueError("payload must be a dict")
    try:
        # The receiver sees the payload after a JSON round trip (tuples become lists, int keys
        # strings): MAC exactly that, or the receiver would compute another MAC.
        plain = json.loads(json.dumps(payload, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not plain JSON: {exc}") from None
    sent_at = int(now * 1000)
    mac = compute_mesh_mac(
        secrets, topic=topic, sender=sender_id, counter=counter, sent_at=sent_at, will=bool(will), payload=plain
    )
    message = MeshMessage(
        version=ENVELOPE_VERSION,
        sender=sender_id,
        counter=counter,
        sent_at=sent_at,
        topic=topic,
        will=bool(will),
        payload=plain,
        mac=mac,
    )
    raw = json.dumps(dataclasses.asdict(message), separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MeshMessageError(
            "oversize", f"a mesh message is at most {MAX_MESSAGE_BYTES} bytes; this one is {len(raw)}"
        )
    return raw
