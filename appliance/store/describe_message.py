"""A stored message as the JSON the web app reads."""

from __future__ import annotations

from appliance.store.store_models import Message


def describe_message(row: Message) -> dict:
    """Plain dict of a Message row."""
    return {
        "id": row.id,
        "role": row.role,
        "content": row.content,
        "finish_reason": row.finish_reason,
        "created_at": row.created_at.isoformat() + "Z",
    }
