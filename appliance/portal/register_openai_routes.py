"""OpenAI-compatible API: POST /v1/chat/completions (streaming and not) and GET /v1/models."""
from __future__ import annotations

import json
import time
import uuid
from typing import Callable

from flask import Flask, Response, jsonify, request

from appliance.engine.engine_types import ChatRequest, Engine, EngineError
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.portal_types import ApiError
from appliance.portal.read_json_body import read_json_body
from appliance.portal.open_chat_stream import open_chat_stream


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _sse(payload) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode("utf-8")


def _stream_response(model: str, start, events, include_usage: bool):
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish_reason=None, **extra) -> dict:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }

    def generate():
        try:
            yield _sse(chunk({"role": "assistant", "content": ""}))
            for event in events:
                if event.kind == "delta":
                    yield _sse(chunk({"content": event.text}))
                elif event.kind == "done":
                    usage = _usage(start.prompt_tokens, event.completion_tokens)
                    reason = "stop" if event.finish_reason == "cancelled" else event.finish_reason
                    yield _sse(chunk({}, reason, usage=usage))
                    if include_usage:
                        yield _sse({**chunk({}), "choices": [], "usage": usage})
        except EngineError as exc:
            yield _sse({"error": {"message": exc.message, "type": "server_error", "param": None, "code": exc.code}})
        finally:
            events.close()
        yield b"data: [DONE]\n\n"

    return Response(generate(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache",
                                                                          "X-Accel-Buffering": "no"})


def _complete_response(model: str, start, events) -> Response:
    text, done = [], None
    for event in events:
        if event.kind == "delta":
            text.append(event.text)
        elif event.kind == "done":
            done = event
    return jsonify({
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "".join(text)},
            "finish_reason": done.finish_reason if done else "stop",
        }],
        "usage": _usage(start.prompt_tokens, done.completion_tokens if done else 0),
    })


def register_openai_routes(app: Flask, current_engine: Callable[[], Engine], client_key) -> None:
    """Add the OpenAI-compatible routes; `client_key()` names the caller for fair queueing."""

    @app.get("/v1/models")
    def list_models():
        engine = current_engine()
        return jsonify({
            "object": "list",
            "data": [{"id": engine.model_id, "object": "model", "created": 0, "owned_by": "iplm"}],
        })

    @app.post("/v1/chat/completions")
    def create_chat_completion():
        engine = current_engine()
        parsed = parse_chat_request(read_json_body(), models=(engine.model_id,), n_ctx=engine.n_ctx)
        chat = ChatRequest(messages=parsed.messages, params=parsed.params, client_key=client_key())
        is_gone = request.environ.get("waitress.client_disconnected", lambda: False)
        start, events = open_chat_stream(engine, chat, is_gone)
        if start.kind == "done":  # the client left while queued
            raise ApiError(499, "The client closed the request.", code="client_closed")
        if parsed.stream:
            return _stream_response(parsed.model, start, events, parsed.include_usage)
        return _complete_response(parsed.model, start, events)
