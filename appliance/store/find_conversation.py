"""Look up one conversation, only among the asking phone's own."""

from __future__ import annotations

from appliance.store.store_models import Conversation


def find_conversation(client_id: str, conversation_id: str) -> Conversation | None:
    """Return the row, or None when it does not exist or belongs to another phone (the same answer)."""
    return Conversation.get_or_none((Conversation.id == conversation_id) & (Conversation.client_id == client_id))
