"""The conversation queries the portal uses, on a real SQLite file per test."""

from __future__ import annotations

import datetime as dt
import re

import peewee
import pytest

from appliance.store.create_conversation import create_conversation
from appliance.store.delete_conversation import delete_conversation
from appliance.store.describe_conversation import describe_conversation
from appliance.store.find_conversation import find_conversation
from appliance.store.list_conversations import list_conversations
from appliance.store.record_exchange import record_exchange
from appliance.store.rename_conversation import rename_conversation
from appliance.store.store_models import Conversation, Message

_ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


def _record(
    client_id: str,
    conversation_id: str,
    question: str = "Why is the sky blue?",
    answer: str = "Rayleigh scattering.",
    **kwargs,
) -> tuple[dict, dict]:
    fields = {"finish_reason": "stop", "completion_tokens": 4, "model": "smollm", **kwargs}
    return record_exchange(find_conversation(client_id, conversation_id), question, answer, **fields)


def _set_updated_at(conversation_id: str, minutes: int) -> None:
    # Explicit times: rows created in one test may share a microsecond.
    when = dt.datetime(2025, 1, 1, 12, 0) + dt.timedelta(minutes=minutes)
    Conversation.update(updated_at=when).where(Conversation.id == conversation_id).execute()


def _stored_messages() -> list[tuple]:
    return [(m.conversation_id, m.role, m.content) for m in Message.select().order_by(Message.id)]


# --- create, list, find ---------------------------------------------------------------------------


def test_create_returns_the_stored_conversation(db):
    created = create_conversation("phone-a", title="Trip", model="smollm")

    assert re.fullmatch(r"[0-9a-f]{32}", created["id"])
    assert (created["title"], created["model"]) == ("Trip", "smollm")
    assert _ISO_Z.fullmatch(created["created_at"]) and _ISO_Z.fullmatch(created["updated_at"])
    assert describe_conversation(find_conversation("phone-a", created["id"])) == created
    assert create_conversation("phone-a")["title"] == ""
    assert create_conversation("phone-a")["id"] != created["id"]


def test_list_is_newest_first_and_only_the_phones_own(db):
    ids = [create_conversation("phone-a", title=title)["id"] for title in ("old", "middle", "new")]
    for minutes, conversation_id in enumerate(ids):
        _set_updated_at(conversation_id, minutes)
    create_conversation("phone-b", title="someone else's")

    assert [c["title"] for c in list_conversations("phone-a")] == ["new", "middle", "old"]
    assert [c["title"] for c in list_conversations("phone-a", limit=2)] == ["new", "middle"]
    assert [c["title"] for c in list_conversations("phone-b")] == ["someone else's"]
    assert list_conversations("phone-c") == []


def test_a_new_exchange_moves_a_conversation_to_the_top(db):
    ids = [create_conversation("phone-a", title=title)["id"] for title in ("old", "new")]
    for minutes, conversation_id in enumerate(ids):
        _set_updated_at(conversation_id, minutes)

    _record("phone-a", ids[0])

    assert [c["title"] for c in list_conversations("phone-a")] == ["old", "new"]


def test_find_hides_other_phones_conversations(db):
    mine = create_conversation("phone-a")["id"]
    theirs = create_conversation("phone-b")["id"]

    assert find_conversation("phone-a", mine).id == mine
    assert find_conversation("phone-a", theirs) is None  # the same answer as for an id that does not exist
    assert find_conversation("phone-a", "0" * 32) is None


# --- rename, delete -------------------------------------------------------------------------------


def test_rename(db):
    conversation_id = create_conversation("phone-a", title="before")["id"]

    renamed = rename_conversation("phone-a", conversation_id, "after")

    assert renamed["title"] == "after"
    assert describe_conversation(find_conversation("phone-a", conversation_id)) == renamed


def test_rename_someone_elses_conversation_changes_nothing(db):
    conversation_id = create_conversation("phone-b", title="theirs")["id"]

    assert rename_conversation("phone-a", conversation_id, "mine now") is None
    assert rename_conversation("phone-a", "nope", "x") is None
    assert find_conversation("phone-b", conversation_id).title == "theirs"


def test_delete_removes_the_conversation_and_its_messages(db):
    doomed = create_conversation("phone-a")["id"]
    kept = create_conversation("phone-a")["id"]
    _record("phone-a", doomed)
    _record("phone-a", kept, "Keep me", "Kept.")

    assert delete_conversation("phone-a", doomed) is True

    assert find_conversation("phone-a", doomed) is None
    assert _stored_messages() == [(kept, "user", "Keep me"), (kept, "assistant", "Kept.")]
    assert delete_conversation("phone-a", doomed) is False


def test_delete_someone_elses_conversation_changes_nothing(db):
    theirs = create_conversation("phone-b")["id"]
    _record("phone-b", theirs)

    assert delete_conversation("phone-a", theirs) is False

    assert find_conversation("phone-b", theirs) is not None
    assert len(_stored_messages()) == 2


# --- record_exchange ------------------------------------------------------------------------------


def test_record_exchange_stores_both_messages_in_order(db):
    conversation_id = create_conversation("phone-a")["id"]
    created_at = find_conversation("phone-a", conversation_id).updated_at

    reply, conversation = _record(
        "phone-a", conversation_id, finish_reason="length", completion_tokens=48, model="qwen2.5-0.5b"
    )

    assert (reply["role"], reply["content"], reply["finish_reason"]) == ("assistant", "Rayleigh scattering.", "length")
    assert _ISO_Z.fullmatch(reply["created_at"])
    assert (conversation["model"], conversation["title"]) == ("qwen2.5-0.5b", "Why is the sky blue?")
    assert find_conversation("phone-a", conversation_id).updated_at > created_at
    full = describe_conversation(find_conversation("phone-a", conversation_id), with_messages=True)
    assert full == {**conversation, "messages": full["messages"]}
    assert [(m["role"], m["content"], m["finish_reason"]) for m in full["messages"]] == [
        ("user", "Why is the sky blue?", None),
        ("assistant", "Rayleigh scattering.", "length"),
    ]
    assert full["messages"][1] == reply
    assert Message.get_by_id(reply["id"]).tokens == 48


def test_title_comes_from_the_first_question_only(db):
    conversation_id = create_conversation("phone-a")["id"]

    _record("phone-a", conversation_id, "  What   is\n\tthe weather\n")
    _, conversation = _record("phone-a", conversation_id, "And tomorrow?")

    assert conversation["title"] == "What is the weather"
    assert len(_stored_messages()) == 4


def test_a_given_title_is_kept(db):
    conversation_id = create_conversation("phone-a", title="Named by hand")["id"]

    _, conversation = _record("phone-a", conversation_id)

    assert conversation["title"] == "Named by hand"


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("x" * 60, "x" * 60),
        ("x" * 61, "x" * 59 + "…"),
        ("word " * 30, ("word " * 12).rstrip() + "…"),  # no dangling space before the ellipsis
        ("héllo wörld " * 10, ("héllo wörld " * 10)[:59].rstrip() + "…"),
    ],
)
def test_long_titles_are_cut_to_60_characters(db, question, title):
    conversation_id = create_conversation("phone-a")["id"]

    _, conversation = _record("phone-a", conversation_id, question)

    assert conversation["title"] == title and len(title) <= 60


def test_a_failed_reply_write_stores_neither_message(db, monkeypatch):
    conversation_id = create_conversation("phone-a")["id"]
    before = describe_conversation(find_conversation("phone-a", conversation_id))
    create = Message.create

    def fail_on_reply(**fields):
        if fields.get("role") == "assistant":
            raise peewee.OperationalError("disk I/O error")
        return create(**fields)

    monkeypatch.setattr(Message, "create", fail_on_reply)

    with pytest.raises(peewee.OperationalError):
        _record("phone-a", conversation_id)

    assert _stored_messages() == []
    assert describe_conversation(find_conversation("phone-a", conversation_id)) == before
    monkeypatch.undo()
    _record("phone-a", conversation_id)  # the database is still usable
    assert len(_stored_messages()) == 2
