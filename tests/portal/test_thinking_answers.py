"""Deep thinking through a real `iplm serve` with the real default model: the API's reasoning_effort and the
web app's "Think deeply", the clarify-then-answer loop across turns, the kept intent, stopping, bad input.

What the small model's analyses say is not asserted (they are samples); what is: the rules' questions
(deterministic), that a person's answer leads to an answer within the question budget, the shapes of the
graph and the events, and what is stored."""

import contextlib
import json
import sqlite3
import time

import pytest

from appliance.thinking.clarify_types import CLARIFY_BUDGET
from appliance.thinking.encode_intent_model import INTENT_FORMAT
from tests.conftest import read_sse, send_message

pytestmark = pytest.mark.engine

BUG = "How do I get rid of a bug?"
BUG_CHOICES = ["an insect", "an error in software"]
KINDS = {"goal", "aspect", "component", "candidate", "check", "answer"}
STATES = {"pending", "running", "done", "failed", "chosen", "rejected"}


def _chat(messages, **extra):
    return {"messages": messages, "reasoning_effort": "medium", "max_tokens": 40, **extra}


def _assert_graph(graph):
    ids = [node["id"] for node in graph["nodes"]]
    assert len(ids) == len(set(ids)) and graph["nodes"]
    assert all(node["kind"] in KINDS and node["state"] in STATES for node in graph["nodes"])
    assert all(len(node["label"]) <= 80 for node in graph["nodes"])
    assert all(edge["from"] in ids and edge["to"] in ids for edge in graph["edges"])


def _kept_intent(live_unit, conversation_id: str) -> tuple[str, int]:
    """The conversation's kept intent row, read from the unit's database as it is on disk."""
    with contextlib.closing(sqlite3.connect(f"file:{live_unit.data_dir / 'iplm.db'}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT intent, asked FROM conversation_intent WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()
    assert row is not None
    return row


def _answer_until_done(http, messages, choice):
    """Answer the unit's questions (with `choice`) until it answers; (its answer body, questions asked)."""
    asked = 0
    while True:
        body = http.post("/v1/chat/completions", json=_chat(messages)).json()
        clarification = body.get("iplm_clarification")
        if clarification is None:
            return body, asked
        asked += 1
        assert asked <= CLARIFY_BUDGET
        messages = [*messages, body["choices"][0]["message"], {"role": "user", "content": choice}]


def test_the_api_asks_about_a_word_of_several_senses_then_answers_the_reading_chosen(live_unit):
    with live_unit.client() as http:
        body = http.post("/v1/chat/completions", json=_chat([{"role": "user", "content": BUG}])).json()
        clarification = body["iplm_clarification"]
        assert clarification["choices"] == BUG_CHOICES
        assert (
            body["choices"][0]["message"]["content"]
            == clarification["question"]
            == "Which \u201cbug\u201d do you mean?"
        )
        _assert_graph(body["iplm_reasoning_graph"])
        messages = [
            {"role": "user", "content": BUG},
            body["choices"][0]["message"],
            {"role": "user", "content": BUG_CHOICES[0]},
        ]
        answer, asked = _answer_until_done(http, messages, BUG_CHOICES[0])
    assert asked < CLARIFY_BUDGET  # one more question at most after the first: within the budget
    assert answer["choices"][0]["message"]["content"].strip()
    graph = answer["iplm_reasoning_graph"]
    _assert_graph(graph)
    kinds = [node["kind"] for node in graph["nodes"]]
    assert "candidate" in kinds and "check" in kinds and kinds[-1] == "answer"
    assert any(node["state"] == "chosen" for node in graph["nodes"] if node["kind"] == "candidate")


def test_the_api_streams_each_step_of_thinking_then_the_answer(live_unit):
    with (
        live_unit.client() as http,
        http.stream(
            "POST", "/v1/chat/completions", json=_chat([{"role": "user", "content": BUG}], stream=True)
        ) as response,
    ):
        assert response.status_code == 200
        chunks = read_sse(response)[:-1]
    steps = [chunk["iplm_thinking"]["step"] for chunk in chunks if "iplm_thinking" in chunk]
    assert steps[0] == "analysing" and steps[-1] == "asking"
    for chunk in chunks:
        if "iplm_thinking" in chunk:
            assert chunk["choices"][0]["delta"] == {} and chunk["iplm_thinking"]["detail"]
            _assert_graph(chunk["iplm_thinking"]["graph"])
    asked = [chunk["iplm_clarification"] for chunk in chunks if "iplm_clarification" in chunk]
    assert len(asked) == 1 and asked[0]["choices"] == BUG_CHOICES
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks if chunk["choices"])
    assert text == asked[0]["question"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "iplm_reasoning_graph" in chunks[-1]


def test_low_effort_answers_directly_and_bad_thinking_values_are_refused(live_unit):
    with live_unit.client() as http:
        for effort in ("none", "minimal", "low"):
            body = http.post(
                "/v1/chat/completions", json=_chat([{"role": "user", "content": BUG}], reasoning_effort=effort)
            )
            assert body.status_code == 200 and "iplm_reasoning_graph" not in body.json()
            assert "iplm_clarification" not in body.json()
        bad = [
            {"reasoning_effort": "extreme"},
            {"reasoning_effort": 5},
            {"reasoning_effort": ["high"]},
            {"iplm_thinking": "fast"},
            {"iplm_thinking": {"max_calls": 0}},
            {"iplm_thinking": {"max_calls": 10**30}},
            {"iplm_thinking": {"max_seconds": "soon"}},
            {"iplm_thinking": {"depth": 3}},
        ]
        for extra in bad:
            response = http.post("/v1/chat/completions", json={**_chat([{"role": "user", "content": BUG}]), **extra})
            assert response.status_code == 400, extra
            assert response.json()["error"]["code"] in ("invalid_value", "invalid_type")
        raw = '{"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "high", "iplm_thinking": '
        response = http.post(
            "/v1/chat/completions",
            content=raw + '{"max_seconds": 1e309}}',  # infinity, as Python's JSON reads it
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == "max_seconds"
        assert http.get("/healthz").json()["status"] == "ok"


def test_the_web_app_asks_keeps_the_question_and_its_model_then_answers_the_choice(live_unit):
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        _, events = send_message(http, conversation["id"], BUG, think=True, params={"max_tokens": 40})
        kinds = [event["type"] for event in events]
        assert kinds[0] == "thinking" and "clarify" in kinds and kinds[-1] == "done"
        clarify = next(event for event in events if event["type"] == "clarify")
        assert clarify["choices"] == BUG_CHOICES
        done = events[-1]
        assert done["clarify"] == {"question": clarify["question"], "choices": BUG_CHOICES}
        _assert_graph(done["graph"])
        stored = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert (
            stored[1]["content"] == clarify["question"] and stored[1]["thinking"]["clarify"]["choices"] == BUG_CHOICES
        )
        # The intent model is kept for the next turn, with the question it had.
        kept, asked = _kept_intent(live_unit, conversation["id"])
        assert asked == 1 and json.loads(kept)["format"] == INTENT_FORMAT

        answer, asked = BUG_CHOICES[0], 0
        while True:
            _, events = send_message(http, conversation["id"], answer, think=True, params={"max_tokens": 40})
            if events[-1]["clarify"] is None:
                break
            asked += 1
            assert asked < CLARIFY_BUDGET
        done = events[-1]
        assert done["type"] == "done" and done["message"]["content"].strip()
        assert any(node["kind"] == "answer" for node in done["graph"]["nodes"])
        stored = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert stored[-1]["thinking"]["graph"] == done["graph"] and stored[-1]["thinking"]["clarify"] is None
        assert _kept_intent(live_unit, conversation["id"])[1] == 0  # answered: no question waits
        # A plain message afterwards thinks about nothing and keeps nothing of thinking.
        _, events = send_message(http, conversation["id"], "Thanks!", params={"max_tokens": 8})
        assert {event["type"] for event in events} <= {"delta", "done"} and events[-1]["graph"] is None
        assert "thinking" not in http.get(f"/api/conversations/{conversation['id']}").json()["messages"][-1]


def test_bad_think_values_are_refused_and_nothing_is_stored(live_unit):
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        for extra in ({"think": "yes"}, {"think": 1}, {"think": True, "effort": "max"}, {"think": True, "effort": 3}):
            response, events = send_message(http, conversation["id"], BUG, **extra)
            assert response.status_code == 400 and events is None, extra
        assert http.get(f"/api/conversations/{conversation['id']}").json()["messages"] == []


def test_a_phone_that_stops_mid_thinking_leaves_the_unit_answering_others(live_unit):
    with live_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        with http.stream(
            "POST",
            f"/api/conversations/{conversation['id']}/messages",
            json={"content": "Explain how tides work.", "think": True, "params": {"max_tokens": 40}},
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"thinking"' in line:
                    break  # the phone stops while the unit analyses
    with live_unit.client() as other:
        body = other.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Say hi."}]})
        assert body.status_code == 200 and body.json()["choices"][0]["message"]["content"].strip()
    with live_unit.client() as http:
        # The same phone can think again: its place is given back once the unit sees it left (at its next
        # write or poll, within a second or so).
        deadline = time.monotonic() + 30
        while True:
            body = http.post("/v1/chat/completions", json=_chat([{"role": "user", "content": BUG}]))
            if body.status_code != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert body.status_code == 200 and body.json()["iplm_clarification"]["choices"] == BUG_CHOICES


def test_one_phone_thinks_about_one_question_at_a_time(live_unit):
    # Both clients are on 127.0.0.1: one phone, as the unit names its clients by address.
    with (
        live_unit.client() as http,
        live_unit.client() as again,
        http.stream(
            "POST", "/v1/chat/completions", json=_chat([{"role": "user", "content": BUG}], stream=True)
        ) as first,
    ):
        lines = first.iter_lines()
        next(lines)  # its first chunk: the unit is thinking about it
        refused = again.post("/v1/chat/completions", json=_chat([{"role": "user", "content": BUG}]))
        assert refused.status_code == 429 and refused.headers.get("retry-after")
        assert refused.json()["error"]["code"] == "too_many_chats"
        assert "data: [DONE]" in list(lines)  # the first goes on to its end


def test_the_unit_says_its_thinking_budget_and_a_phone_may_override_it(live_unit):
    with live_unit.client() as http:
        unit = http.get("/api/unit").json()
        low, high = unit["limits"]["max_calls"]
        assert low <= unit["defaults"]["max_calls"] <= high
        low, high = unit["limits"]["max_seconds"]
        assert low <= unit["defaults"]["max_seconds"] <= high
        conversation = http.post("/api/conversations", json={}).json()
        # One call: no analysis, the rules decide, one candidate answers.
        _, events = send_message(
            http, conversation["id"], "What is 12 times 12?", think=True, params={"max_calls": 1, "max_tokens": 16}
        )
        graph = events[-1]["graph"]
        assert [node["kind"] for node in graph["nodes"]].count("candidate") == 1
        assert not [event for event in events if event["type"] == "clarify"]
        for bad in ({"max_calls": 0}, {"max_calls": 17}, {"max_seconds": 1}, {"max_seconds": "soon"}):
            response, events = send_message(http, conversation["id"], "hi", think=True, params=bad)
            assert response.status_code == 400 and events is None, bad
