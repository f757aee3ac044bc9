"""Start a chat on the engine and wait for its first event, so refusals become plain HTTP errors."""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import request

from appliance.engine.engine_types import ChatEvent, ChatRequest, ChatStream, Engine
from appliance.portal.portal_types import ApiError


class _CancelWhenGone:
    """An Event that also reads as set once the HTTP client has gone away."""

    def __init__(self, is_gone: Callable[[], bool]):
        self._event = threading.Event()
        self._is_gone = is_gone

    def is_set(self) -> bool:
        if not self._event.is_set() and self._is_gone():
            self._event.set()
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()


def open_chat_stream(engine: Engine, chat: ChatRequest) -> tuple[ChatEvent, ChatStream]:
    """The "start" event and the rest of the stream, for the current HTTP request. EngineError propagates
    before any output; a client that left while queued is a 499. The generation stops when the client
    goes away (waitress tells), or when the returned iterator is closed."""
    is_gone = request.environ.get("waitress.client_disconnected", lambda: False)
    events = engine.stream_chat(chat, _CancelWhenGone(is_gone))
    first = next(events)
    if first.kind == "done":  # the client left while its request was queued
        raise ApiError(499, "The client closed the request.", code="client_closed")
    return first, events
