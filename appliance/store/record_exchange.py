"""Store one question and its answer together."""

from __future__ import annotations

from appliance.store.describe_conversation import describe_conversation
from appliance.store.describe_message import describe_message
from appliance.store.store_models import Conversation, Message, database, now_utc

_TITLE_LENGTH = 60


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _TITLE_LENGTH else line[: _TITLE_LENGTH - 1].rstrip() + "…"


def record_exchange(
    conversation: Conversation,
    question: str,
    answer: str,
    *,
    finish_reason: str,
    completion_tokens: int,
    model: str,
) -> tuple[dict, dict]:
    """Append the user's message and the reply in one transaction: a history never holds half an exchange.

    Returns (the reply as a message dict, the updated conversation dict).
    """
    with database.atomic():
        Message.create(conversation=conversation, role="user", content=question)
        reply = Message.create(
            conversation=conversation,
            role="assistant",
            content=answer,
            finish_reason=finish_reason,
            tokens=completion_tokens,
        )
        conversation.updated_at = now_utc()
        conversation.model = model
        if not conversation.title:
            conversation.title = _title_from(question)
        conversation.save(only=["updated_at", "model", "title"])
    return describe_message(reply), describe_conversation(conversation)
