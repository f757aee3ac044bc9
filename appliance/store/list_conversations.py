"""The conversations of one phone, newest first."""

from __future__ import annotations

from appliance.store.describe_conversation import describe_conversation
from appliance.store.store_models import Conversation


def list_conversations(client_id: str, limit: int = 200) -> list[dict]:
    """Return the client's conversations, most recently updated first."""
    rows = (
        Conversation.select()
        .where(Conversation.client_id == client_id)
        .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc())
        .limit(limit)
    )
    return [describe_conversation(row) for row in rows]
