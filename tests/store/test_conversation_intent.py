"""A conversation's intent model row: kept across turns, replaced, gone with its conversation."""

import pytest

from appliance.store.create_conversation import create_conversation
from appliance.store.delete_conversation import delete_conversation
from appliance.store.find_conversation import find_conversation
from appliance.store.read_conversation_intent import read_conversation_intent
from appliance.store.record_conversation_intent import MAX_INTENT_BYTES, record_conversation_intent
from appliance.store.store_models import ConversationIntent


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
