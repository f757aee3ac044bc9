"""How much the chat store holds, against what it keeps: for the admin page."""

from __future__ import annotations

import peewee

from appliance.store.measure_free_space import measure_free_space
from appliance.store.read_store_limits import read_store_limits
from appliance.store.store_models import MESSAGE_BYTES, Conversation, Message


def describe_chat_storage() -> dict:
    """{"conversations", "bytes" (their text), "retention_days", "total_bytes" (the cap), "free_bytes"}."""
    limits = read_store_limits()
    size = Message.select(peewee.fn.COALESCE(peewee.fn.SUM(MESSAGE_BYTES), 0))
    return {
        "conversations": Conversation.select().count(),
        "bytes": int(size.scalar()),
        "retention_days": limits.retention_days,
        "total_bytes": limits.total_bytes,
        "free_bytes": measure_free_space(),
    }
