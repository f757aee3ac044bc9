"""Remove conversations past their retention or beyond the store's quotas, oldest first."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import peewee

from appliance.store.store_models import MESSAGE_BYTES, Conversation, Message, database, now_utc
from appliance.store.store_types import PruneReport, StoreLimits


def _delete(ids: list[str]) -> int:
    for start in range(0, len(ids), 500):  # SQLite caps the variables of one statement
        batch = ids[start : start + 500]
        Message.delete().where(Message.conversation.in_(batch)).execute()
        Conversation.delete().where(Conversation.id.in_(batch)).execute()
    return len(ids)


def _sizes_newest_first(client_id: str | None) -> list[tuple[str, int]]:
    """(conversation id, bytes of its text), most recently used first; one phone's or everyone's."""
    size = peewee.fn.COALESCE(peewee.fn.SUM(MESSAGE_BYTES), 0)  # bytes, not chars
    query = (
        Conversation.select(Conversation.id, size.alias("size"))
        .join(Message, peewee.JOIN.LEFT_OUTER)
        .group_by(Conversation.id)
        .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc())
    )
    if client_id is not None:
        query = query.where(Conversation.client_id == client_id)
    rows: Iterable[tuple[str, int]] = query.tuples()  # type: ignore[assignment]  # peewee's stubs type rows as models
    return [(str(conversation_id), int(size)) for conversation_id, size in rows]


def _beyond(sizes: list[tuple[str, int]], max_bytes: int, max_count: int | None = None) -> list[str]:
    """The ids past the newest ones that fit in max_bytes (and max_count). The most recently used
    conversation always stays: it is the one the phone is talking in (its growth is the device budget's)."""
    total = sizes[0][1] if sizes else 0
    for index, (_, size) in enumerate(sizes[1:], 1):
        total += size
        if total > max_bytes or (max_count is not None and index >= max_count):
            return [conversation_id for conversation_id, _ in sizes[index:]]
    return []


def prune_conversations(limits: StoreLimits, *, client_id: str | None = None) -> PruneReport:
    """Keep the store within `limits`, removing the least recently used conversations first.

    With `client_id`: that phone's quota only (cheap: run after each of its exchanges). Without: the
    unit-wide pass (run every few minutes): conversations unused for `retention_days`, then the total.
    """
    with database.atomic():
        if client_id is not None:
            sizes = _sizes_newest_first(client_id)
            return PruneReport(over_phone_quota=_delete(_beyond(sizes, limits.phone_bytes, limits.phone_conversations)))
        cutoff = now_utc() - timedelta(days=limits.retention_days)
        unused = Conversation.select(Conversation.id).where(Conversation.updated_at < cutoff)
        expired = _delete([row.id for row in unused])
        return PruneReport(expired=expired, over_total=_delete(_beyond(_sizes_newest_first(None), limits.total_bytes)))
