"""Split answers through a real `iplm serve` with the real default model: the API and the web app's API."""

import pytest

from tests.conftest import read_sse, send_message

pytestmark = pytest.mark.engine

QUESTIONS = "1. Why is the sea salty?\n2. What causes thunder?\n3. How do magnets work?"
TITLES = ["Why is the sea salty?", "What causes thunder?", "How do magnets work?"]


def _chat(content, **extra):
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 60, "temperature": 0, **extra}


def _assert_each_piece_once_in_order(text, pieces_text):
    positions = [text.index(f"### {title}\n\n") for title in TITLES]
    assert positions == sorted(positions) and positions[0] == 0
    for title, piece in zip(TITLES, pieces_text, strict=True):
        assert text.count(f"### {title}") == 1
        assert piece.strip() and text.count(piece.strip()) == 1


def test_the_api_answers_several_questions_in_pieces(two_worker_unit):
    with two_worker_unit.client() as http:
        body = http.post("/v1/chat/completions", json=_chat(QUESTIONS)).json()
    pieces = body["iplm_pieces"]
    assert [piece["title"] for piece in pieces] == TITLES
    assert all(piece["finish_reason"] in ("stop", "length") for piece in pieces)
    _assert_each_piece_once_in_order(body["choices"][0]["message"]["content"], [p["text"] for p in pieces])
    assert body["usage"]["completion_tokens"] > 0


def test_the_api_streams_the_plan_the_pieces_and_the_stitched_answer(two_worker_unit):
    with (
        two_worker_unit.client() as http,
        http.stream("POST", "/v1/chat/completions", json=_chat(QUESTIONS, stream=True)) as response,
    ):
        assert response.status_code == 200
        chunks = read_sse(response)[:-1]
    assert chunks[0]["iplm_plan"] == TITLES
    texts = ["", "", ""]
    for chunk in chunks:
        if "iplm_piece" in chunk:
            assert chunk["choices"][0]["delta"] == {}
            texts[chunk["iplm_piece"]["index"]] += chunk["iplm_piece"]["text"]
    answer = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    _assert_each_piece_once_in_order(answer, texts)


def test_an_api_client_can_turn_splitting_off_and_bad_values_are_refused(two_worker_unit):
    with two_worker_unit.client() as http:
        whole = http.post("/v1/chat/completions", json=_chat(QUESTIONS, iplm_split=False)).json()
        assert "iplm_pieces" not in whole and whole["choices"][0]["message"]["content"].strip()
        for bad in ("no", 0, None, [], {}):
            response = http.post("/v1/chat/completions", json=_chat(QUESTIONS, iplm_split=bad))
            assert response.status_code == 400 and response.json()["error"]["param"] == "iplm_split"


def test_a_prompt_that_does_not_suit_splitting_runs_whole(two_worker_unit):
    with two_worker_unit.client() as http:
        body = http.post("/v1/chat/completions", json=_chat("Write a poem about autumn rain.")).json()
    assert "iplm_pieces" not in body and "### " not in body["choices"][0]["message"]["content"][:4]


def test_the_web_app_gets_piece_cards_and_stores_the_stitched_answer(two_worker_unit):
    with two_worker_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        _, events = send_message(http, conversation["id"], QUESTIONS, params={"max_tokens": 60})
        assert events[0] == {"type": "plan", "pieces": TITLES}
        texts = ["", "", ""]
        for event in events:
            if event["type"] == "piece":
                texts[event["index"]] += event["text"]
        answer = "".join(event["text"] for event in events if event["type"] == "delta")
        _assert_each_piece_once_in_order(answer, texts)
        done = events[-1]
        assert done["type"] == "done" and done["message"]["content"] == answer
        stored = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant"] and stored[1]["content"] == answer


def test_a_phone_can_turn_splitting_off_and_bad_values_lose_nothing(two_worker_unit):
    with two_worker_unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        _, events = send_message(http, conversation["id"], QUESTIONS, split=False, params={"max_tokens": 30})
        assert not any(event["type"] in ("plan", "piece") for event in events)
        for bad in ("off", 1, None):
            response, _ = send_message(http, conversation["id"], QUESTIONS, split=bad)
            assert response.status_code == 400 and response.json()["error"]["param"] == "split"
        stored = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert len(stored) == 2  # the refused messages stored nothing
