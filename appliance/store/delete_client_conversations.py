"""Delete every conversation of one phone."""

from __future__ import annotations

from appliance.store.store_models import Conversation, Message, database


def delete_client_conversations(client_id: str) -> int:
    """Delete the phone's conversations and their messages; returns how many conversations went."""
    with database.atomic():
        owned = Conversation.select(Conversation.id).where(Conversation.client_id == client_id)
        Message.delete().where(Message.conversation.in_(owned)).execute()
        return Conversation.delete().where(Conversation.client_id == client_id).execute()
