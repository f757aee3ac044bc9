"""OpenAI-compatible API: POST /v1/chat/completions (streaming and not) and GET /v1/models."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, jsonify, request

from appliance.engine.engine_types import ChatEvent, ChatRequest, ChatStream, Engine, EngineError
from appliance.portal.describe_piece_event import describe_piece_event
from appliance.portal.name_chat_client import name_chat_client
from appliance.portal.open_chat_stream import open_chat_stream
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.read_json_object import read_json_object
from appliance.portal.stream_sse_response import DONE, stream_sse_response
from appliance.thinking.count_asked_clarifications import count_asked_clarifications


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _stream_chunks(model: str, start: ChatEvent, events: ChatStream, include_usage: bool) -> Iterator:
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

    try:
        # Which unit of the mesh answers, beside OpenAI's fields ("": the unit asked); a split answer's
        # pieces (their titles), then each piece's progress in chunks of its own with an empty delta.
        first = {"iplm_plan": list(start.plan)} if start.plan else {}
        yield chunk({"role": "assistant", "content": ""}, iplm_unit=start.unit, **first)
        for event in events:
            if event.kind == "piece":
                yield chunk({}, iplm_piece=describe_piece_event(event))
            elif event.kind == "thought":
                # Deep thinking's progress: the step, a sentence, and the reasoning graph so far.
                yield chunk({}, iplm_thinking={"step": event.step, "detail": event.text, "graph": event.graph})
            elif event.kind == "clarify":
                yield chunk({}, iplm_clarification={"question": event.text, "choices": list(event.choices)})
            elif event.kind == "delta":
                yield chunk({"content": event.text})
            elif event.kind == "done":
                usage = _usage(start.prompt_tokens, event.completion_tokens)
                reason = "stop" if event.finish_reason == "cancelled" else event.finish_reason
                graph = {} if event.graph is None else {"iplm_reasoning_graph": event.graph}
                yield chunk({}, reason, usage=usage, **graph)
                if include_usage:
                    yield {**chunk({}), "choices": [], "usage": usage}
    except EngineError as exc:
        yield {"error": {"message": exc.message, "type": "server_error", "param": None, "code": exc.code}}
    finally:
        events.close()
    yield DONE


def _complete_response(model: str, start: ChatEvent, events: ChatStream) -> Response:
    text, done, clarification = [], None, None
    pieces: list[dict] = [{"title": title, "unit": "", "text": "", "finish_reason": None} for title in start.plan]
    for event in events:
        if event.kind == "delta":
            text.append(event.text)
        elif event.kind == "clarify":
            clarification = {"question": event.text, "choices": list(event.choices)}
        elif event.kind == "done":
            done = event
        elif event.kind == "piece" and 0 <= event.piece < len(pieces):
            piece = pieces[event.piece]
            if event.finish_reason == "restarted":
                piece["text"] = ""
            piece["text"] += event.text
            piece["unit"] = event.unit or piece["unit"]
            piece["finish_reason"] = event.finish_reason or piece["finish_reason"]
    split = {"iplm_pieces": pieces} if pieces else {}
    # Deep thinking: the reasoning graph, and the clarifying question when the unit asked back.
    thought = {} if done is None or done.graph is None else {"iplm_reasoning_graph": done.graph}
    if clarification is not None:
        thought["iplm_clarification"] = clarification
    return jsonify(
        {
            **split,
            **thought,
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(text)},
                    "finish_reason": done.finish_reason if done else "stop",
                }
            ],
            "usage": _usage(start.prompt_tokens, done.completion_tokens if done else 0),
            "iplm_unit": start.unit,  # which unit of the mesh answered ("": the unit asked)
        }
    )


def build_chat_api_blueprint(current_engine: Callable[[], Engine]) -> Blueprint:
    """The OpenAI-compatible routes; callers are limited and queued by address (name_chat_client)."""
    api = Blueprint("chat_api", __name__, url_prefix="/v1")

    @api.get("/models")
    def list_models():
        engine = current_engine()
        return jsonify(
            {"object": "list", "data": [{"id": engine.model_id, "object": "model", "created": 0, "owned_by": "iplm"}]}
        )

    @api.post("/chat/completions")
    def create_chat_completion():
        engine = current_engine()
        parsed = parse_chat_request(read_json_object(), models=(engine.model_id,), n_ctx=engine.n_ctx)
        client = name_chat_client(request.remote_addr)
        thinking = parsed.thinking
        if thinking is not None:
            # Stateless: the unit's own clarifying questions are known again in the history by their wording.
            thinking = dataclasses.replace(thinking, asked=count_asked_clarifications(parsed.messages))
        chat = ChatRequest(
            messages=parsed.messages, params=parsed.params, client_key=client, split=parsed.split, thinking=thinking
        )
        start, events = open_chat_stream(engine, chat)
        if parsed.stream:
            return stream_sse_response(_stream_chunks(parsed.model, start, events, parsed.include_usage))
        return _complete_response(parsed.model, start, events)

    return api
