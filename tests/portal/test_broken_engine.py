"""A llama.cpp build that cannot run on this CPU: the unit stays up and says so everywhere, once it knows.

The pool runs real worker processes whose engine dies by a real SIGILL at every chat (an illegal
instruction, as a build for another CPU does); nothing here is mocked above the engine.
"""

import pytest

from appliance.engine.pool.pool_types import BROKEN_AFTER_DEATHS
from tests.portal.broken_engine_unit import PIN, open_broken_engine_unit


@pytest.fixture
def client(tmp_path):
    with open_broken_engine_unit(tmp_path) as app:
        yield app.test_client()


def _chat(client):
    return client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def test_until_it_is_known_each_chat_fails_alone_then_every_place_says_why(client):
    assert client.get("/healthz").status_code == 200
    for _ in range(BROKEN_AFTER_DEATHS - 1):
        failed = _chat(client)
        assert failed.status_code == 502 and "SIGILL" in failed.get_json()["error"]["message"]
    broken = _chat(client)
    assert broken.status_code == 503
    error = broken.get_json()["error"]
    assert error["code"] == "engine_broken" and "cannot run on this unit" in error["message"]
    assert "illegal instruction" in error["message"] and "rebuild" in error["message"]

    health = client.get("/healthz")
    assert health.status_code == 503
    body = health.get_json()
    assert body["status"] == "failed" and body["engine"]["state"] == "failed"
    assert "illegal instruction" in body["engine"]["failure"]

    unit = client.get("/api/unit").get_json()
    assert unit["engine_state"] == "failed" and "illegal instruction" in unit["engine_failure"]

    client.post("/api/admin/session", json={"pin": PIN})
    engine = client.get("/api/admin/models").get_json()["engine"]
    assert engine["state"] == "failed" and "illegal instruction" in engine["failure"]

    # The web app's own path: a conversation's reply is refused with the same reason, nothing is stored.
    conversation = client.post("/api/conversations", json={}).get_json()
    reply = client.post(f"/api/conversations/{conversation['id']}/messages", json={"content": "hello"})
    text = reply.get_data(as_text=True)
    assert "engine_broken" in text and "cannot run on this unit" in text
    assert client.get(f"/api/conversations/{conversation['id']}").get_json()["messages"] == []
