"""A stored message as the JSON the web app reads."""

from __future__ import annotations

import json

from appliance.store.store_models import Message


def _thinking(text: str | None) -> dict | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None  # a row broken on disk reads as a plain message
    return value if isinstance(value, dict) else None


def describe_message(row: Message) -> dict:
    """Plain dict of a Message row; "thinking" ({"graph", "clarify"}) only on a reply that thought first."""
    described = {
        "id": row.id,
        "role": row.role,
        "content": row.content,
        "finish_reason": row.finish_reason,
        "created_at": row.created_at.isoformat() + "Z",
    }
    thinking = _thinking(row.thinking)
    return described if thinking is None else {**described, "thinking": thinking}
