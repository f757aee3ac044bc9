"""One of a client's places in a layer that bounds what each client runs at once (split and thinking answers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from appliance.engine.engine_types import ClientPlaces, EngineError

_RETRY_AFTER_S = 5.0


@contextlib.contextmanager
def hold_client_place(places: ClientPlaces, client_key: str, most: int, refusal: str) -> Iterator[None]:
    """Hold one of `client_key`'s places while the block runs; a client that holds `most` already gets
    EngineError too_many_chats (429, Retry-After) with `refusal` as its message."""
    with places.lock:
        if places.running[client_key] >= most:
            raise EngineError("too_many_chats", refusal, 429, retry_after_s=_RETRY_AFTER_S)
        places.running[client_key] += 1
    try:
        yield
    finally:
        with places.lock:
            places.running[client_key] -= 1
            if places.running[client_key] <= 0:
                del places.running[client_key]
