"""The web app's conversation API: list, create, read, rename, delete, and send a message (SSE reply)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Blueprint, g, jsonify, request

from appliance.engine.engine_types import ChatEvent, ChatParams, ChatRequest, ChatStream, Engine, EngineError
from appliance.portal.name_chat_client import name_chat_client
from appliance.portal.open_chat_stream import open_chat_stream
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.portal_types import ApiError, ParsedChat
from appliance.portal.read_json_object import read_json_object
from appliance.portal.stream_sse_response import stream_sse_response
from appliance.store.create_conversation import create_conversation
from appliance.store.delete_conversation import delete_conversation
from appliance.store.describe_conversation import describe_conversation
from appliance.store.find_conversation import find_conversation
from appliance.store.list_conversations import list_conversations
from appliance.store.read_conversation_history import read_conversation_history
from appliance.store.record_exchange import record_exchange
from appliance.store.rename_conversation import rename_conversation

_MAX_TITLE = 200
_MAX_CONTENT = 100_000


def _title(body: dict, *, required: bool) -> str:
    title = body.get("title")
    if title is None and not required:
        return ""
    if not isinstance(title, str) or len(title) > _MAX_TITLE or (required and not title.strip()):
        raise ApiError(
            400,
            f"'title' must be a non-empty string of at most {_MAX_TITLE} characters.",
            param="title",
            code="invalid_value",
        )
    return title.strip()


def _owned(conversation_id: str):
    row = find_conversation(g.client_id, conversation_id)
    if row is None:
        raise ApiError(404, "No such conversation.", code="conversation_not_found")
    return row


def _open_reply(engine: Engine, history: list[dict], question: str, params: ChatParams):
    # The engine leaves out the oldest exchanges that do not fit, measured in its own tokens, in one go.
    messages = tuple(history + [{"role": "user", "content": question}])
    client = name_chat_client(request.remote_addr)
    return open_chat_stream(engine, ChatRequest(messages=messages, params=params, client_key=client, fit_history=True))


def _read_chat_body(engine: Engine) -> tuple[str, ParsedChat]:
    body = read_json_object()
    content = body.get("content")
    if not isinstance(content, str) or not content.strip() or len(content) > _MAX_CONTENT:
        raise ApiError(
            400,
            f"'content' must be a non-empty string of at most {_MAX_CONTENT} characters.",
            param="content",
            code="invalid_value",
        )
    params = body.get("params", {})
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise ApiError(400, "'params' must be an object.", param="params", code="invalid_type")
    openai_body = {
        "model": body.get("model", engine.model_id),
        "messages": [{"role": "user", "content": content}],
        **{k: params[k] for k in ("max_tokens", "temperature", "top_p") if k in params},
    }
    return content, parse_chat_request(openai_body, models=(engine.model_id,), n_ctx=engine.n_ctx)


def _reply(row, content: str, model: str, start: ChatEvent, events: ChatStream) -> Iterator[dict]:
    pieces, done, failed = [], None, False
    try:
        for event in events:
            if event.kind == "delta":
                pieces.append(event.text)
                yield {"type": "delta", "text": event.text}
            elif event.kind == "done":
                done = event
    except EngineError as exc:
        # Nothing is stored: the phone keeps the question and can send it again.
        failed = True
        yield {"type": "error", "error": {"message": exc.message, "code": exc.code}}
    finally:
        events.close()
        if done is None and not failed and pieces:
            # The phone left mid-reply: keep what it was shown.
            record_exchange(row, content, "".join(pieces), finish_reason="cancelled", completion_tokens=0, model=model)
    if failed or done is None:
        return
    message, conversation = record_exchange(
        row,
        content,
        "".join(pieces),
        finish_reason=done.finish_reason or "stop",
        completion_tokens=done.completion_tokens,
        model=model,
    )
    usage = {
        "prompt_tokens": start.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": start.prompt_tokens + done.completion_tokens,
    }
    # How many of the oldest messages the model did not see, so the app can say so.
    yield {
        "type": "done",
        "message": message,
        "usage": usage,
        "conversation": conversation,
        "dropped_messages": start.dropped_messages,
    }


def build_conversations_blueprint(current_engine: Callable[[], Engine]) -> Blueprint:
    """/api/conversations…; the phone is g.client_id, set by the app from its cookie."""
    conversations = Blueprint("conversations", __name__, url_prefix="/api/conversations")

    @conversations.get("")
    def list_own_conversations():
        return jsonify({"conversations": list_conversations(g.client_id)})

    @conversations.post("")
    def create_own_conversation():
        engine = current_engine()
        body = read_json_object(allow_empty=True)
        model = body.get("model", engine.model_id)
        if model != engine.model_id:
            raise ApiError(
                404, f"The model '{model}' does not exist on this unit.", param="model", code="model_not_found"
            )
        return jsonify(create_conversation(g.client_id, title=_title(body, required=False), model=model)), 201

    @conversations.get("/<conversation_id>")
    def read_own_conversation(conversation_id: str):
        return jsonify(describe_conversation(_owned(conversation_id), with_messages=True))

    @conversations.patch("/<conversation_id>")
    def rename_own_conversation(conversation_id: str):
        renamed = rename_conversation(g.client_id, conversation_id, _title(read_json_object(), required=True))
        if renamed is None:
            raise ApiError(404, "No such conversation.", code="conversation_not_found")
        return jsonify(renamed)

    @conversations.delete("/<conversation_id>")
    def delete_own_conversation(conversation_id: str):
        if not delete_conversation(g.client_id, conversation_id):
            raise ApiError(404, "No such conversation.", code="conversation_not_found")
        return "", 204

    @conversations.post("/<conversation_id>/messages")
    def send_message(conversation_id: str):
        engine = current_engine()
        row = _owned(conversation_id)
        content, parsed = _read_chat_body(engine)
        start, events = _open_reply(engine, read_conversation_history(row), content, parsed.params)
        return stream_sse_response(_reply(row, content, parsed.model, start, events))

    return conversations
