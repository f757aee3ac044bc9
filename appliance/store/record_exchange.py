"""Store one question and its answer together."""

from __future__ import annotations

import json

from appliance.store.describe_conversation import describe_conversation
from appliance.store.describe_message import describe_message
from appliance.store.store_models import Conversation, Message, database, now_utc

_TITLE_LENGTH = 60
# A reasoning graph is bounded by its shape (a few dozen nodes of short labels): a few kilobytes.
MAX_THINKING_BYTES = 64 * 1024


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
    thinking: dict | None = None,
) -> tuple[dict, dict]:
    """Append the user's message and the reply in one transaction: a history never holds half an exchange.
    thinking: what a reply that thought first keeps with it (its reasoning graph, its clarifying question);
    one past MAX_THINKING_BYTES is not kept (the reply is).

    Returns (the reply as a message dict, the updated conversation dict).
    """
    kept = json.dumps(thinking, separators=(",", ":")) if thinking else None
    if kept is not None and len(kept.encode("utf-8")) > MAX_THINKING_BYTES:
        kept = None
    with database.atomic():
        Message.create(conversation=conversation, role="user", content=question)
        reply = Message.create(
            conversation=conversation,
            role="assistant",
            content=answer,
            finish_reason=finish_reason,
            tokens=completion_tokens,
            thinking=kept,
        )
        conversation.updated_at = now_utc()
        conversation.model = model
        if not conversation.title:
            conversation.title = _title_from(question)
        conversation.save(only=["updated_at", "model", "title"])
    return describe_message(reply), describe_conversation(conversation)
