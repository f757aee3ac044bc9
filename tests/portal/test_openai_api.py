"""The OpenAI-compatible API of a real `iplm serve` with the real default model."""

import json

import openai
import pytest

from appliance.engine.default_model import DEFAULT_MODEL_ID
from tests.conftest import read_sse

pytestmark = pytest.mark.engine

HELLO = [{"role": "user", "content": "Say hello."}]


def test_models_lists_the_default_model(live_unit):
    with live_unit.client() as http:
        body = http.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [DEFAULT_MODEL_ID]


def test_streaming_completion_is_sse_ending_in_done(live_unit):
    with (
        live_unit.client() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": DEFAULT_MODEL_ID,
                "messages": HELLO,
                "stream": True,
                "max_tokens": 12,
                "stream_options": {"include_usage": True},
            },
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        payloads = read_sse(response)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == DEFAULT_MODEL_ID for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.strip()
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] in ("stop", "length")
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_non_streaming_completion_has_message_and_usage(live_unit):
    with live_unit.client() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": DEFAULT_MODEL_ID, "messages": HELLO, "max_tokens": 8, "temperature": 0},
        )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"].strip()
    assert body["usage"]["completion_tokens"] <= 8


def test_official_openai_client_streams(live_unit):
    client = openai.OpenAI(base_url=f"{live_unit.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model=DEFAULT_MODEL_ID, messages=HELLO, stream=True, max_tokens=10)
    text = "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
    assert text.strip()
    reply = client.chat.completions.create(model=DEFAULT_MODEL_ID, messages=HELLO, max_tokens=5)
    assert reply.choices[0].message.content and reply.usage.completion_tokens <= 5


def test_json_schema_output_follows_the_schema(live_unit):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    with live_unit.client() as http:
        response = http.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "Name a big city and its population as JSON."}],
                "max_tokens": 60,
                "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
            },
        )
    assert response.status_code == 200, response.text
    data = json.loads(response.json()["choices"][0]["message"]["content"])
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": "hi"}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, 400, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "   "}]}, 400, "messages"),
        ({"messages": HELLO, "model": "gpt-17"}, 404, "model"),
        ({"messages": HELLO, "temperature": 9}, 400, "temperature"),
        ({"messages": HELLO, "temperature": "hot"}, 400, "temperature"),
        ({"messages": HELLO, "top_p": 0}, 400, "top_p"),
        ({"messages": HELLO, "max_tokens": 0}, 400, "max_tokens"),
        ({"messages": HELLO, "max_tokens": 10**9}, 400, "max_tokens"),
        ({"messages": HELLO, "max_tokens": True}, 400, "max_tokens"),
        ({"messages": HELLO, "n": 3}, 400, "n"),
        ({"messages": HELLO, "stream": "yes"}, 400, "stream"),
        ({"messages": HELLO, "stop": [1]}, 400, "stop"),
        ({"messages": HELLO, "response_format": {"type": "xml"}}, 400, "response_format.type"),
        ({"messages": HELLO, "tools": [{"type": "function"}]}, 400, "tools"),
    ],
)
def test_bad_input_gets_openai_shaped_4xx(live_unit, body, status, param):
    with live_unit.client() as http:
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == status
        error = response.json()["error"]
        assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"
        assert http.get("/healthz").status_code == 200  # and the server keeps serving


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_malformed_bodies_are_rejected(live_unit, raw):
    with live_unit.client() as http:
        response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_prompt_longer_than_the_context_is_a_400(live_unit):
    long_prompt = "word " * 5000  # the test unit runs with a 2048-token context
    with live_unit.client() as http:
        response = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": long_prompt}]})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
        streamed = http.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": long_prompt}], "stream": True}
        )
        assert streamed.status_code == 400  # refused before the stream starts, not inside it


def test_oversized_body_is_a_413(live_unit):
    with live_unit.client() as http:
        response = http.post("/v1/chat/completions", content=b"x" * (2 << 20))
    assert response.status_code == 413
    assert "error" in response.json()


def test_unknown_path_is_json_404(live_unit):
    with live_unit.client() as http:
        response = http.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
