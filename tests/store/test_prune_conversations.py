"""The chat store keeps to its retention and quotas: the least recently used conversations go first."""

from __future__ import annotations

from datetime import timedelta

from appliance.store.create_conversation import create_conversation
from appliance.store.delete_client_conversations import delete_client_conversations
from appliance.store.find_conversation import find_conversation
from appliance.store.prune_conversations import prune_conversations
from appliance.store.read_store_limits import read_store_limits
from appliance.store.record_exchange import record_exchange
from appliance.store.store_models import Conversation, now_utc
from appliance.store.store_types import DEFAULT_RETENTION_DAYS, RETENTION_SETTING, StoreLimits
from appliance.store.write_setting import write_setting


def _conversation(client: str, text: str = "", *, days_ago: float = 0.0, minutes_ago: float = 0.0) -> str:
    conversation_id = create_conversation(client)["id"]
    if text:
        record_exchange(
            find_conversation(client, conversation_id),
            text,
            "ok",
            finish_reason="stop",
            completion_tokens=1,
            model="m",
        )
    when = now_utc() - timedelta(days=days_ago, minutes=minutes_ago)
    Conversation.update(updated_at=when).where(Conversation.id == conversation_id).execute()
    return conversation_id


def _ids() -> set[str]:
    return {row.id for row in Conversation.select(Conversation.id)}


def test_conversations_unused_past_the_retention_go(db):
    old = _conversation("a", "hello", days_ago=15)
    recent = _conversation("a", "hello", days_ago=13)
    report = prune_conversations(StoreLimits(retention_days=14))
    assert report.expired == 1 and _ids() == {recent} and old not in _ids()


def test_a_phone_over_its_count_loses_its_oldest_and_nobody_else_does(db):
    mine = [_conversation("phone", minutes_ago=minute) for minute in range(5)]  # mine[0] is the newest
    other = _conversation("other", minutes_ago=99)
    report = prune_conversations(StoreLimits(phone_conversations=3), client_id="phone")
    assert report.over_phone_quota == 2
    assert _ids() == {*mine[:3], other}


def test_a_phone_over_its_bytes_loses_its_oldest_but_never_the_one_it_talks_in(db):
    # Bytes, not characters: "é" is two.
    newest = _conversation("phone", "é" * 600, minutes_ago=0)
    middle = _conversation("phone", "x" * 300, minutes_ago=1)
    oldest = _conversation("phone", "x" * 300, minutes_ago=2)
    prune_conversations(StoreLimits(phone_bytes=1600), client_id="phone")
    assert _ids() == {newest, middle}  # 1202 + 302 (each with its "ok" reply): the oldest no longer fits
    prune_conversations(StoreLimits(phone_bytes=100), client_id="phone")
    assert _ids() == {newest}  # over the quota on its own, yet kept: the phone is using it
    assert oldest not in _ids()


def test_the_whole_store_keeps_to_its_total(db):
    ids = [_conversation(f"phone{n}", "x" * 1000, minutes_ago=n) for n in range(10)]
    report = prune_conversations(StoreLimits(total_bytes=5000))
    assert report.over_total == 6 and _ids() == set(ids[:4])


def test_delete_all_my_chats_deletes_only_mine(db):
    _conversation("mine", "a")
    _conversation("mine", "b")
    theirs = _conversation("theirs", "c")
    assert delete_client_conversations("mine") == 2
    assert _ids() == {theirs}
    assert delete_client_conversations("mine") == 0


def test_the_owner_sets_the_retention_and_nonsense_reads_as_the_default(db):
    assert read_store_limits().retention_days == DEFAULT_RETENTION_DAYS
    write_setting(RETENTION_SETTING, 3)
    assert read_store_limits().retention_days == 3
    for bad in (0, -1, 10**9, "7", True, None, 2.5):
        write_setting(RETENTION_SETTING, bad)
        assert read_store_limits().retention_days == DEFAULT_RETENTION_DAYS
