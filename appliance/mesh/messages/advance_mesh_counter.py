"""The next counter a sender stamps on a mesh message."""

from __future__ import annotations


def advance_mesh_counter(last_counter: int | None, *, now: float) -> int:
    """max(milliseconds since the epoch, last_counter + 1).

    Time-based so that a sender that lost its state still starts above what receivers saw; `last_counter`
    (persisted by the caller) keeps it increasing when the clock steps backwards.
    """
    now_ms = int(now * 1000)
    return now_ms if last_counter is None else max(now_ms, last_counter + 1)
