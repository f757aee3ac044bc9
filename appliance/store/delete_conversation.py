"""Delete a conversation and its messages."""

from __future__ import annotations

from appliance.store.store_models import Conversation, Message, database


def delete_conversation(client_id: str, conversation_id: str) -> bool:
    """Delete it; False when the phone has no such conversation."""
    with database.atomic():
        owned = Conversation.select(Conversation.id).where(
            (Conversation.id == conversation_id) & (Conversation.client_id == client_id)
        )
        Message.delete().where(Message.conversation.in_(owned)).execute()
        return (
            Conversation.delete()
            .where((Conversation.id == conversation_id) & (Conversation.client_id == client_id))
            .execute()
            > 0
        )
