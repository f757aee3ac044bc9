"""A chat this unit sent to a peer, one event at a time (pure): the peer's results in order, each delta
delivered exactly once, and a fall-back to this unit (continuing the reply the client already has) when the
peer declines, fails, goes silent, is lost, or sends something that does not fit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.engine.engine_types import ChatEvent
from appliance.mesh.work.remote_chat_types import (
    ACCEPT_TIMEOUT_S,
    MAX_RESULT_TEXT,
    SILENCE_TIMEOUT_S,
    CancelOnPeer,
    ClientLeft,
    Deliver,
    PeerLost,
    RemoteChat,
    RemoteEffect,
    RemoteEvent,
    RemoteTicked,
    ResultArrived,
    RunElsewhere,
)
from appliance.route_event import route_event

Step = tuple[RemoteChat, list[RemoteEffect]]
_FINISH_REASONS = ("stop", "length", "cancelled")
_MAX_COUNT = 10**9


def _is_open(chat: RemoteChat) -> bool:
    return chat.phase in ("asked", "accepted", "streaming")


def _fail(chat: RemoteChat, reason: str, *, cancel: bool) -> Step:
    # Cancel on the peer when it may still be working: a job that we no longer read must not hold its worker.
    effects: list[RemoteEffect] = [CancelOnPeer(chat.job, chat.node)] if cancel else []
    effects.append(RunElsewhere(chat.text, chat.started, reason))
    return dataclasses.replace(chat, phase="failed"), effects


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT else None


def _on_start(chat: RemoteChat, payload: dict) -> Step:
    prompt_tokens, dropped = _count(payload.get("prompt_tokens")), _count(payload.get("dropped_messages", 0))
    if chat.phase == "streaming" or prompt_tokens is None or dropped is None:
        return _fail(chat, "the peer sent a start that does not fit", cancel=True)
    chat = dataclasses.replace(chat, phase="streaming")
    if chat.started:  # the client has its start already (this chat continues a reply): none twice
        return chat, []
    start = ChatEvent("start", prompt_tokens=prompt_tokens, dropped_messages=dropped)
    return dataclasses.replace(chat, started=True), [Deliver(start)]


def _on_delta(chat: RemoteChat, payload: dict) -> Step:
    seq, text = _count(payload.get("seq")), payload.get("text")
    if chat.phase != "streaming" or not isinstance(text, str) or len(text) > MAX_RESULT_TEXT or seq is None:
        return _fail(chat, "the peer sent a delta that does not fit", cancel=True)
    if seq < chat.next_seq:  # delivered already (QoS 1 may deliver twice): never twice to the client
        return chat, []
    if seq > chat.next_seq:  # one went missing: what follows it cannot be shown without it
        return _fail(chat, f"delta {chat.next_seq} from the peer went missing", cancel=True)
    if len(chat.text) + len(text) > chat.max_text:
        return _fail(chat, "the peer sent more than the reply may hold", cancel=True)
    chat = dataclasses.replace(chat, next_seq=seq + 1, text=chat.text + text)
    return chat, [Deliver(ChatEvent("delta", text=text))] if text else []


def _on_done(chat: RemoteChat, payload: dict) -> Step:
    seq, reason = _count(payload.get("seq")), payload.get("finish_reason")
    prompt_tokens, completion_tokens = _count(payload.get("prompt_tokens")), _count(payload.get("completion_tokens"))
    if (
        chat.phase != "streaming"
        or reason not in _FINISH_REASONS
        or prompt_tokens is None
        or completion_tokens is None
        or seq is None
    ):
        return _fail(chat, "the peer sent an end that does not fit", cancel=True)
    if seq < chat.next_seq:
        return chat, []
    if seq > chat.next_seq:
        return _fail(chat, f"delta {chat.next_seq} from the peer went missing", cancel=True)
    if reason == "cancelled":  # we did not cancel it: the peer stopped short (shutting down, its own limits)
        return _fail(chat, "the peer cut the reply short", cancel=False)
    done = ChatEvent(
        "done", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, finish_reason=str(reason)
    )
    return dataclasses.replace(chat, phase="finished", next_seq=seq + 1), [Deliver(done)]


def _result(chat: RemoteChat, event: ResultArrived) -> Step:
    if not _is_open(chat) or event.payload.get("job") != chat.job:
        return chat, []
    chat = dataclasses.replace(chat, heard_at=event.at)
    kind = event.payload.get("type")
    if kind == "accepted":
        return (dataclasses.replace(chat, phase="accepted"), []) if chat.phase == "asked" else (chat, [])
    if kind == "keepalive":
        return chat, []
    if kind == "declined":
        reason = event.payload.get("reason")
        said = reason[:200] if isinstance(reason, str) else "no reason"
        return _fail(chat, f"the peer declined: {said}", cancel=False)
    if kind == "error":  # before its start: the engine refused the request there (busy, too long...)
        code = event.payload.get("code")
        return _fail(chat, f"the peer's engine refused it ({code if isinstance(code, str) else '?'})", cancel=False)
    if kind == "start":
        return _on_start(chat, event.payload)
    if kind == "delta":
        return _on_delta(chat, event.payload)
    if kind == "done":
        return _on_done(chat, event.payload)
    return _fail(chat, "the peer sent a result of no known type", cancel=True)


def _lost(chat: RemoteChat, event: PeerLost) -> Step:
    return _fail(chat, "the peer is gone", cancel=False) if _is_open(chat) else (chat, [])


def _tick(chat: RemoteChat, event: RemoteTicked) -> Step:
    if not _is_open(chat):
        return chat, []
    quiet = event.at - chat.heard_at
    if chat.phase == "asked" and quiet >= ACCEPT_TIMEOUT_S:
        return _fail(chat, f"the peer did not answer in {ACCEPT_TIMEOUT_S:g} s", cancel=True)
    if quiet >= SILENCE_TIMEOUT_S:
        return _fail(chat, f"the peer was silent for {SILENCE_TIMEOUT_S:g} s", cancel=True)
    return chat, []


def _client_left(chat: RemoteChat, event: ClientLeft) -> Step:
    if not _is_open(chat):
        return chat, []
    return dataclasses.replace(chat, phase="finished"), [CancelOnPeer(chat.job, chat.node)]


_TRANSITIONS: dict[type, Callable[[RemoteChat, Any], Step]] = {
    ResultArrived: _result,
    PeerLost: _lost,
    RemoteTicked: _tick,
    ClientLeft: _client_left,
}


def apply_remote_chat_event(chat: RemoteChat, event: RemoteEvent) -> Step:
    """The remote chat after `event`, and the effects to perform, in order; `chat` is not changed."""
    return route_event(_TRANSITIONS, chat, event, "remote chat")
