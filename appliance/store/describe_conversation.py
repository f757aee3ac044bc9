"""A stored conversation as the JSON the web app reads."""

from __future__ import annotations

from appliance.store.describe_message import describe_message
from appliance.store.store_models import Conversation, Message


def describe_conversation(row: Conversation, *, with_messages: bool = False) -> dict:
    """Plain dict of a Conversation row, with its messages in order when asked."""
    data: dict = {
        "id": row.id,
        "title": row.title,
        "model": row.model,
        "created_at": row.created_at.isoformat() + "Z",
        "updated_at": row.updated_at.isoformat() + "Z",
    }
    if with_messages:
        messages = Message.select().where(Message.conversation == row).order_by(Message.id)
        data["messages"] = [describe_message(m) for m in messages]
    return data
