"""The in-memory record of which client addresses opened the portal, and until when."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from appliance.portal.captive_types import DEFAULT_MAX_CLIENTS, DEFAULT_OPEN_SECONDS, CaptiveState


def start_captive_state(
    *,
    open_seconds: float = DEFAULT_OPEN_SECONDS,
    max_clients: int = DEFAULT_MAX_CLIENTS,
    clock: Callable[[], float] = time.monotonic,
) -> CaptiveState:
    """Start an empty {ip: expiry} table: expired entries are purged on access, the oldest evicted past max_clients."""
    if open_seconds <= 0 or max_clients <= 0:
        raise ValueError("open_seconds and max_clients must be positive")
    # Kept in expiry order (every mark moves its entry to the end): the front is always the next to expire.
    expiries: OrderedDict[str, float] = OrderedDict()
    lock = threading.Lock()  # the WSGI server answers phones on several threads

    def _purge_expired(now: float) -> None:
        while expiries and next(iter(expiries.values())) <= now:
            expiries.popitem(last=False)

    def mark_open(ip: str | None) -> None:
        if not ip:
            return
        with lock:
            now = clock()
            _purge_expired(now)
            expiries[ip] = now + open_seconds
            expiries.move_to_end(ip)
            while len(expiries) > max_clients:
                expiries.popitem(last=False)

    def seconds_remaining(ip: str | None) -> float | None:
        if not ip:
            return None
        with lock:
            now = clock()
            _purge_expired(now)
            expiry = expiries.get(ip)
        return None if expiry is None else expiry - now

    def read_entries() -> dict[str, float]:
        with lock:
            _purge_expired(clock())
            return dict(expiries)

    return CaptiveState(mark_open=mark_open, seconds_remaining=seconds_remaining, read_entries=read_entries)
