"""The web app's conversation API against a real `iplm serve`: ownership, streaming, persistence."""

import time

import pytest

from appliance.portal.identify_client import COOKIE_NAME
from tests.conftest import send_message

pytestmark = pytest.mark.engine


def test_a_phone_gets_an_anonymous_cookie(live_unit):
    with live_unit.client() as http:
        response = http.get("/api/conversations")
        assert response.status_code == 200 and response.json() == {"conversations": []}
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        # A known cookie is not re-issued.
        assert "set-cookie" not in http.get("/api/conversations").headers


def test_create_read_rename_delete(live_unit):
    with live_unit.client() as http:
        created = http.post("/api/conversations", json={"title": "Trip"})
        assert created.status_code == 201
        conversation = created.json()
        assert conversation["title"] == "Trip" and len(conversation["id"]) == 32
        read = http.get(f"/api/conversations/{conversation['id']}").json()
        assert read["messages"] == [] and read["title"] == "Trip"
        renamed = http.patch(f"/api/conversations/{conversation['id']}", json={"title": "Trip to Mars"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Trip to Mars"
        assert [c["title"] for c in http.get("/api/conversations").json()["conversations"]] == ["Trip to Mars"]
        assert http.delete(f"/api/conversations/{conversation['id']}").status_code == 204
        assert http.get(f"/api/conversations/{conversation['id']}").status_code == 404
        assert http.delete(f"/api/conversations/{conversation['id']}").status_code == 404


def test_a_phone_sees_only_its_own_conversations(live_unit):
    with live_unit.client() as alice, live_unit.client() as bob:
        mine = alice.post("/api/conversations", json={"title": "alice's"}).json()
        assert bob.get("/api/conversations").json()["conversations"] == []
        for response in (
            bob.get(f"/api/conversations/{mine['id']}"),
            bob.patch(f"/api/conversations/{mine['id']}", json={"title": "mine now"}),
            bob.delete(f"/api/conversations/{mine['id']}"),
            bob.post(f"/api/conversations/{mine['id']}/messages", json={"content": "hi"}),
        ):
            assert response.status_code == 404
        assert alice.get(f"/api/conversations/{mine['id']}").json()["title"] == "alice's"


def test_sending_streams_the_reply_and_stores_the_exchange(live_unit):
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        response, events = send_message(
            http, conversation["id"], "What is the capital of France?", params={"max_tokens": 16, "temperature": 0}
        )
        assert response.status_code == 200
        deltas = [e for e in events if e["type"] == "delta"]
        done = events[-1]
        assert deltas and done["type"] == "done"
        assert done["message"]["content"] == "".join(d["text"] for d in deltas)
        assert done["message"]["finish_reason"] in ("stop", "length")
        assert 0 < done["usage"]["completion_tokens"] <= 16
        assert done["conversation"]["title"] == "What is the capital of France?"
        stored = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert [(m["role"], m["content"]) for m in stored] == [
            ("user", "What is the capital of France?"),
            ("assistant", done["message"]["content"]),
        ]
        # A follow-up carries the history: the prompt grows.
        _, second = send_message(http, conversation["id"], "And of Italy?", params={"max_tokens": 8})
        assert second[-1]["usage"]["prompt_tokens"] > done["usage"]["prompt_tokens"]
        assert len(http.get(f"/api/conversations/{conversation['id']}").json()["messages"]) == 4


@pytest.mark.parametrize(
    "body, param",
    [
        ({"content": ""}, "content"),
        ({"content": 5}, "content"),
        ({}, "content"),
        ({"content": "hi", "params": {"temperature": -1}}, "temperature"),
        ({"content": "hi", "params": {"max_tokens": "many"}}, "max_tokens"),
        ({"content": "hi", "params": []}, "params"),
        ({"content": "hi", "model": "nope"}, "model"),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_stored(live_unit, body, param):
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        response = http.post(f"/api/conversations/{conversation['id']}/messages", json=body)
        assert 400 <= response.status_code < 500
        assert response.json()["error"]["param"] == param
        assert http.get(f"/api/conversations/{conversation['id']}").json()["messages"] == []


def test_bad_titles_and_bodies_are_refused(live_unit):
    with live_unit.client() as http:
        assert http.post("/api/conversations", json={"title": 7}).status_code == 400
        assert http.post("/api/conversations", content=b"{oops").status_code == 400
        conversation = http.post("/api/conversations", json={"title": "keep"}).json()
        for title in ("", "   ", "x" * 201, None):
            response = http.patch(f"/api/conversations/{conversation['id']}", json={"title": title})
            assert response.status_code == 400
        assert http.get(f"/api/conversations/{conversation['id']}").json()["title"] == "keep"


def test_a_question_longer_than_the_context_is_refused_unstored(live_unit):
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        response, _ = send_message(http, conversation["id"], "word " * 5000)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
        assert http.get(f"/api/conversations/{conversation['id']}").json()["messages"] == []


def test_a_conversation_longer_than_the_context_goes_on_without_its_oldest_messages(live_unit):
    # Each question is about 800 tokens of a 2048-token context: for the third, the first must go.
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        dropped = []
        for index in range(3):
            response, events = send_message(
                http, conversation["id"], f"{index} " + "word " * 800, params={"max_tokens": 4}
            )
            assert response.status_code == 200 and events[-1]["type"] == "done"
            dropped.append(events[-1]["dropped_messages"])
            assert events[-1]["usage"]["prompt_tokens"] <= 2048 - 4
        assert dropped[:2] == [0, 0] and dropped[2] == 2  # the first question and its answer
        # The model saw less; the phone's history keeps everything.
        messages = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert [m["content"].split()[0] for m in messages if m["role"] == "user"] == ["0", "1", "2"]


def test_disconnecting_mid_stream_stops_generation_and_keeps_what_was_shown(live_unit):
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        with http.stream(
            "POST",
            f"/api/conversations/{conversation['id']}/messages",
            # At temperature 0 this prompt runs to max_tokens (about 20 s here), never stopping early.
            json={
                "content": "Count from 1 to 1000, separated by commas.",
                "params": {"max_tokens": 1900, "temperature": 0},
            },
        ) as response:
            lines = response.iter_lines()
            received = [line for line, _ in zip(lines, range(6), strict=False) if line.startswith("data:")]
        assert received
        # The engine stops (the worker is free again) long before 1900 tokens would be done.
        deadline = time.monotonic() + 8
        while http.get("/healthz").json()["engine"]["busy"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert http.get("/healthz").json()["engine"]["busy"] == 0
        messages = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["finish_reason"] == "cancelled"


def test_conversations_survive_a_restart(tmp_path):
    from tests.conftest import start_live_unit

    unit = start_live_unit(tmp_path)
    try:
        with unit.client() as http:
            conversation = http.post("/api/conversations", json={}).json()
            send_message(http, conversation["id"], "Remember the word pineapple.", params={"max_tokens": 8})
            cookie = http.cookies[COOKIE_NAME]
        unit.restart()
        with unit.client(cookies={COOKIE_NAME: cookie}) as http:
            listed = http.get("/api/conversations").json()["conversations"]
            assert [c["id"] for c in listed] == [conversation["id"]]
            messages = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
            assert messages[0]["content"] == "Remember the word pineapple."
    finally:
        unit.stop()


def test_chats_past_the_retention_go_when_the_unit_starts(tmp_path):
    from datetime import timedelta

    from appliance.store.open_database import open_database
    from appliance.store.store_models import Conversation, now_utc
    from tests.conftest import start_live_unit

    unit = start_live_unit(tmp_path)
    try:
        with unit.client() as http:
            old = http.post("/api/conversations", json={"title": "old"}).json()
            kept = http.post("/api/conversations", json={"title": "kept"}).json()
            cookie = http.cookies[COOKIE_NAME]
        unit.stop()
        db = open_database(tmp_path)  # while the unit is down: a phone's chat from three weeks ago
        Conversation.update(updated_at=now_utc() - timedelta(days=21)).where(Conversation.id == old["id"]).execute()
        db.close()
        unit.restart()
        with unit.client(cookies={COOKIE_NAME: cookie}) as http:
            deadline = time.monotonic() + 30
            while len(http.get("/api/conversations").json()["conversations"]) > 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [c["id"] for c in http.get("/api/conversations").json()["conversations"]] == [kept["id"]]
    finally:
        unit.stop()
