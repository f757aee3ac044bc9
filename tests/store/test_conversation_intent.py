"""A conversation's intent model row: kept across turns, replaced, gone with its conversation."""

import pytest

from appliance.store.create_conversation import create_conversation
from appliance.store.delete_conversation import delete_conversation
from appliance.store.describe_chat_storage import describe_chat_storage
from appliance.store.describe_conversation import describe_conversation
from appliance.store.find_conversation import find_conversation
from appliance.store.read_conversation_intent import read_conversation_intent
from appliance.store.record_conversation_intent import MAX_INTENT_BYTES, record_conversation_intent
from appliance.store.record_exchange import MAX_THINKING_BYTES, record_exchange
from appliance.store.store_models import ConversationIntent, Message


def _conversation(client="phone"):
    created = create_conversation(client)
    return find_conversation(client, created["id"])


def test_an_intent_is_kept_replaced_and_read_back(db):
    conversation = _conversation()
    assert read_conversation_intent(conversation) is None
    record_conversation_intent(conversation, '{"format": 1}', 1)
    record_conversation_intent(conversation, '{"format": 1, "x": 2}', 2)
    assert read_conversation_intent(conversation) == ('{"format": 1, "x": 2}', 2)
    assert ConversationIntent.select().count() == 1


def test_the_intent_goes_with_its_conversation(db):
    conversation = _conversation()
    record_conversation_intent(conversation, "{}", 0)
    assert delete_conversation("phone", conversation.id)
    assert ConversationIntent.select().count() == 0


def test_an_oversized_intent_is_refused_and_the_old_one_stays(db):
    conversation = _conversation()
    record_conversation_intent(conversation, "{}", 0)
    with pytest.raises(ValueError):
        record_conversation_intent(conversation, "x" * (MAX_INTENT_BYTES + 1), 0)
    assert read_conversation_intent(conversation) == ("{}", 0)


def test_a_reply_keeps_its_reasoning_and_a_broken_row_reads_as_a_plain_message(db):
    conversation = _conversation()
    thinking = {"graph": {"nodes": [], "edges": []}, "clarify": {"question": "Which?", "choices": ["a", "b"]}}
    message, _ = record_exchange(
        conversation, "q", "Which?", finish_reason="stop", completion_tokens=1, model="m", thinking=thinking
    )
    assert message["thinking"] == thinking
    plain, _ = record_exchange(conversation, "q2", "a2", finish_reason="stop", completion_tokens=1, model="m")
    assert "thinking" not in plain
    # Too big to keep: the reply is stored, its reasoning is not.
    huge = {"graph": {"nodes": [{"label": "x" * MAX_THINKING_BYTES}], "edges": []}, "clarify": None}
    big, _ = record_exchange(
        conversation, "q3", "a3", finish_reason="stop", completion_tokens=1, model="m", thinking=huge
    )
    assert "thinking" not in big and big["content"] == "a3"
    Message.update(thinking="{not json").where(Message.id == message["id"]).execute()
    stored = describe_conversation(conversation, with_messages=True)["messages"]
    assert [m["content"] for m in stored] == ["q", "Which?", "q2", "a2", "q3", "a3"]
    assert not any("thinking" in m for m in stored)
    # Storage budgets count the reasoning kept with a reply, not only its text.
    Message.update(thinking='{"graph": null, "clarify": null}').where(Message.id == message["id"]).execute()
    assert describe_chat_storage()["bytes"] == sum(len(m["content"]) for m in stored) + len(
        '{"graph": null, "clarify": null}'
    )
