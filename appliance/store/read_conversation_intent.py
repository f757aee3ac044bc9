"""Read a conversation's kept intent model (deep thinking)."""

from __future__ import annotations

from appliance.store.store_models import Conversation, ConversationIntent


def read_conversation_intent(conversation: Conversation) -> tuple[str, int] | None:
    """(the intent model's JSON, how many clarifying questions the current prompt has had), or None."""
    row = ConversationIntent.get_or_none(ConversationIntent.conversation == conversation)
    return None if row is None else (row.intent, row.asked)
