"""Keep a conversation's intent model (deep thinking) for its next turns."""

from __future__ import annotations

from appliance.store.store_models import Conversation, ConversationIntent, now_utc

# An encoded intent model is bounded by its schema (a few kilobytes); a row past this is refused, not kept.
MAX_INTENT_BYTES = 64 * 1024


def record_conversation_intent(conversation: Conversation, intent_json: str, asked: int) -> None:
    """Replace the conversation's intent model (the JSON encode_intent_model wrote) and its question count."""
    if len(intent_json.encode("utf-8")) > MAX_INTENT_BYTES:
        raise ValueError(f"an intent model over {MAX_INTENT_BYTES} bytes is not kept")
    ConversationIntent.replace(
        conversation=conversation, intent=intent_json, asked=max(0, asked), updated_at=now_utc()
    ).execute()
