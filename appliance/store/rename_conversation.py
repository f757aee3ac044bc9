"""Rename a conversation."""

from __future__ import annotations

from appliance.store.describe_conversation import describe_conversation
from appliance.store.find_conversation import find_conversation


def rename_conversation(client_id: str, conversation_id: str, title: str) -> dict | None:
    """Set the title; None when the phone has no such conversation."""
    row = find_conversation(client_id, conversation_id)
    if row is None:
        return None
    row.title = title
    row.save(only=["title"])
    return describe_conversation(row)
