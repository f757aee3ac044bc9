"""The web app's conversation API: list, create, read, rename, delete, and send a message (SSE reply)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import peewee
from flask import Blueprint, g, jsonify, request

from appliance.engine.engine_types import ChatEvent, ChatRequest, ChatStream, Engine, EngineError, ThinkingAsk
from appliance.portal.describe_piece_event import describe_piece_event
from appliance.portal.name_chat_client import name_chat_client
from appliance.portal.open_chat_stream import open_chat_stream
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.portal_types import ApiError, ParsedChat
from appliance.portal.read_json_object import read_json_object
from appliance.portal.start_storage_budgets import start_storage_budgets
from appliance.portal.storage_budget_types import StorageAsked, StorageBudgetKeeper, StorageUsed
from appliance.portal.stream_sse_response import stream_sse_response
from appliance.store.create_conversation import create_conversation
from appliance.store.delete_client_conversations import delete_client_conversations
from appliance.store.delete_conversation import delete_conversation
from appliance.store.describe_conversation import describe_conversation
from appliance.store.find_conversation import find_conversation
from appliance.store.list_conversations import list_conversations
from appliance.store.measure_free_space import measure_free_space
from appliance.store.prune_conversations import prune_conversations
from appliance.store.read_conversation_history import read_conversation_history
from appliance.store.read_conversation_intent import read_conversation_intent
from appliance.store.read_store_limits import read_store_limits
from appliance.store.record_conversation_intent import record_conversation_intent
from appliance.store.record_exchange import record_exchange
from appliance.store.rename_conversation import rename_conversation
from appliance.store.store_types import CHATS_STOP_BELOW_BYTES

_log = logging.getLogger("iplm.portal")
_MAX_TITLE = 200
_NOT_SAVED = "The reply could not be saved: the unit's storage failed or is full. Copy what you need from it."
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


def _open_reply(engine: Engine, history: list[dict], question: str, parsed: ParsedChat, thinking: ThinkingAsk | None):
    # The engine leaves out the oldest exchanges that do not fit, measured in its own tokens, in one go.
    messages = tuple(history + [{"role": "user", "content": question}])
    client = name_chat_client(request.remote_addr)
    chat = ChatRequest(
        messages=messages,
        params=parsed.params,
        client_key=client,
        fit_history=True,
        split=parsed.split,
        thinking=thinking,
    )
    return open_chat_stream(engine, chat)


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
    for name in ("split", "think"):
        if name in body and not isinstance(body[name], bool):
            raise ApiError(400, f"'{name}' must be a boolean.", param=name, code="invalid_type")
    params = body.get("params", {})
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise ApiError(400, "'params' must be an object.", param="params", code="invalid_type")
    budget = {k: params[k] for k in ("max_calls", "max_seconds") if k in params}
    openai_body = {
        "model": body.get("model", engine.model_id),
        "messages": [{"role": "user", "content": content}],
        **{k: params[k] for k in ("max_tokens", "temperature", "top_p") if k in params},
        # The phone's "split big prompts" setting (on unless it says no).
        **({"iplm_split": body["split"]} if "split" in body else {}),
        # The phone's "Think deeply" switch; "effort" ("medium", "high") as the API's reasoning_effort, and
        # its override of the unit's thinking budget among its params.
        **({"reasoning_effort": body.get("effort", "medium")} if body.get("think") else {}),
        **({"iplm_thinking": budget} if body.get("think") and budget else {}),
    }
    return content, parse_chat_request(openai_body, models=(engine.model_id,), n_ctx=engine.n_ctx)


def _record(
    row, question: str, answer: str, finish_reason: str, tokens: int, model: str, stored, thinking: dict | None
) -> tuple[dict, dict]:
    message, conversation = record_exchange(
        row, question, answer, finish_reason=finish_reason, completion_tokens=tokens, model=model, thinking=thinking
    )
    stored(len(answer.encode("utf-8")))
    return message, conversation


@dataclass
class _Thought:
    """What a thinking reply said besides its text: kept with the reply, and the intent for the next turn."""

    graph: dict | None = None
    clarify: dict | None = None
    intent: str | None = None

    def kept(self) -> dict | None:
        return None if self.graph is None and self.clarify is None else {"graph": self.graph, "clarify": self.clarify}


def _reply(
    row,
    content: str,
    model: str,
    start: ChatEvent,
    events: ChatStream,
    stored: Callable[[int], None],
    remember: Callable[[_Thought, bool], None],
) -> Iterator[dict]:
    """The SSE events of a reply; the exchange is stored at its end, and `stored(bytes of the reply)` told;
    remember(what it thought, whether it ends asking back) then keeps the intent for the next turn."""
    pieces, done, failed, thought = [], None, False, _Thought()
    if start.plan:  # a split answer: the app lays out one card per piece, filled as they come
        yield {"type": "plan", "pieces": list(start.plan)}
    try:
        for event in events:
            if event.kind == "piece":
                yield {"type": "piece", **describe_piece_event(event)}
            elif event.kind == "thought":
                thought.graph = event.graph
                yield {"type": "thinking", "step": event.step, "detail": event.text, "graph": event.graph}
            elif event.kind == "clarify":
                thought.clarify = {"question": event.text, "choices": list(event.choices)}
                yield {"type": "clarify", **thought.clarify}
            elif event.kind == "intent":
                thought.intent = event.text
            elif event.kind == "delta":
                pieces.append(event.text)
                yield {"type": "delta", "text": event.text}
            elif event.kind == "done":
                done = event
                thought.graph = event.graph if event.graph is not None else thought.graph
    except EngineError as exc:
        # Nothing is stored: the phone keeps the question and can send it again.
        failed = True
        yield {"type": "error", "error": {"message": exc.message, "code": exc.code}}
    finally:
        events.close()
        if done is None and not failed and pieces:
            # The phone left mid-reply: keep what it was shown.
            _record(row, content, "".join(pieces), "cancelled", 0, model, stored, thought.kept())
            remember(thought, False)
    if failed or done is None:
        return
    try:
        message, conversation = _record(
            row,
            content,
            "".join(pieces),
            done.finish_reason or "stop",
            done.completion_tokens,
            model,
            stored,
            thought.kept(),
        )
        remember(thought, thought.clarify is not None and done.finish_reason == "stop")
    except peewee.OperationalError:  # the disk filled up, or failed, since the reserve was checked
        _log.exception("could not store a reply")
        yield {"type": "error", "error": {"message": _NOT_SAVED, "code": "not_saved"}}
        return
    usage = {
        "prompt_tokens": start.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": start.prompt_tokens + done.completion_tokens,
    }
    # How many of the oldest messages the model did not see, and which unit of the mesh answered ("": this
    # one), so the app can say so.
    yield {
        "type": "done",
        "message": message,
        "usage": usage,
        "conversation": conversation,
        "dropped_messages": start.dropped_messages,
        "unit": start.unit,
        # Deep thinking: the reasoning graph, and the clarifying question when the unit asked back.
        "graph": thought.graph,
        "clarify": thought.clarify,
    }


def _remember(row, intent_json: str, asked: int) -> None:
    try:
        record_conversation_intent(row, intent_json, asked)
    except (ValueError, peewee.OperationalError):  # the reply is stored; the next turn thinks afresh
        _log.exception("could not keep a conversation's intent")


def _check_room(budgets: StorageBudgetKeeper, device: str, size: int, *, conversations: int) -> None:
    """Refuse, before anything is generated or stored, what the disk or the device's budget has no room for."""
    if measure_free_space() < CHATS_STOP_BELOW_BYTES:
        raise ApiError(507, "The unit's storage is full: it cannot keep new chats now.", code="storage_full")
    outcome = budgets.apply(StorageAsked(device, time.monotonic(), bytes=size, conversations=conversations))
    if not outcome.allowed:
        raise ApiError(
            429,
            "This device has stored as much as one device may in a day; delete some chats or try again later.",
            code="storage_quota",
            retry_after_s=outcome.retry_after_s,
        )


def build_conversations_blueprint(
    current_engine: Callable[[], Engine], budgets: StorageBudgetKeeper | None = None
) -> Blueprint:
    """/api/conversations…; the phone is g.client_id, set by the app from its cookie; what its address may
    have stored per day is `budgets`'s (a fresh one when not given)."""
    budgets = budgets or start_storage_budgets()
    conversations = Blueprint("conversations", __name__, url_prefix="/api/conversations")

    @conversations.get("")
    def list_own_conversations():
        return jsonify({"conversations": list_conversations(g.client_id)})

    @conversations.delete("")
    def delete_all_own_conversations():
        # "Delete all my chats": this phone's (its cookie's), nobody else's.
        return jsonify({"deleted": delete_client_conversations(g.client_id)})

    @conversations.post("")
    def create_own_conversation():
        engine = current_engine()
        body = read_json_object(allow_empty=True)
        model = body.get("model", engine.model_id)
        if model != engine.model_id:
            raise ApiError(
                404, f"The model '{model}' does not exist on this unit.", param="model", code="model_not_found"
            )
        _check_room(budgets, name_chat_client(request.remote_addr), 0, conversations=1)
        created = create_conversation(g.client_id, title=_title(body, required=False), model=model)
        prune_conversations(read_store_limits(), client_id=g.client_id)  # past its quota: its oldest go
        return jsonify(created), 201

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
        device = name_chat_client(request.remote_addr)
        _check_room(budgets, device, len(content.encode("utf-8")), conversations=0)
        kept_json, asked = read_conversation_intent(row) or ("", 0)
        thinking = parsed.thinking
        if thinking is not None:
            # The newest `asked` messages answer the unit's clarifying questions; the model kept carries over.
            thinking = dataclasses.replace(thinking, asked=asked, intent_json=kept_json)
        start, events = _open_reply(engine, read_conversation_history(row), content, parsed, thinking)
        client_id = g.client_id

        def stored(reply_bytes: int) -> None:
            budgets.apply(StorageUsed(device, time.monotonic(), reply_bytes))
            prune_conversations(read_store_limits(), client_id=client_id)

        def remember(thought: _Thought, asked_back: bool) -> None:
            if thinking is None and asked == 0:
                return  # nothing kept changes: a plain reply in a conversation that never thought
            # Any exchange ends the clarifying questions unless it asked one more.
            _remember(row, thought.intent if thought.intent is not None else kept_json, asked + 1 if asked_back else 0)

        return stream_sse_response(_reply(row, content, parsed.model, start, events, stored, remember))

    return conversations
