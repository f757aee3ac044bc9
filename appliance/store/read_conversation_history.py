"""A conversation's messages as a chat history for the engine."""

from __future__ import annotations

from appliance.store.store_models import Conversation, Message


def read_conversation_history(conversation: Conversation) -> list[dict]:
    """[{"role", "content"}, ...] oldest first; empty messages (a reply cut off before its first word) left out."""
    query = (
        Message.select(Message.role, Message.content).where(Message.conversation == conversation).order_by(Message.id)
    )
    return [{"role": message.role, "content": message.content} for message in query if message.content]
