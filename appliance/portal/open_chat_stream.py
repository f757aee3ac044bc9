"""Start a chat on the engine and wait for its first event, so refusals become plain HTTP errors."""
from __future__ import annotations

import threading
from typing import Callable, Iterator

from appliance.engine.engine_types import ChatEvent, ChatRequest, Engine


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


def open_chat_stream(
    engine: Engine, request: ChatRequest, is_gone: Callable[[], bool] = lambda: False
) -> tuple[ChatEvent, Iterator[ChatEvent]]:
    """Return the "start" event and the rest of the stream. EngineError propagates before any output.

    Closing the returned iterator (the client left) cancels the generation.
    """
    events = engine.stream_chat(request, _CancelWhenGone(is_gone))
    first = next(events)
    return first, events
