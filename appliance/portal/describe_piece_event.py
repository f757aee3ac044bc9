"""A split answer's piece event as both APIs send it: its index and new text, its unit and end when known."""

from __future__ import annotations

from appliance.engine.engine_types import ChatEvent


def describe_piece_event(event: ChatEvent) -> dict:
    """{"index", "text"} plus "unit" (on the piece's first event) and "finish_reason" (on its last)."""
    piece: dict = {"index": event.piece, "text": event.text}
    if event.unit:
        piece["unit"] = event.unit
    if event.finish_reason:
        piece["finish_reason"] = event.finish_reason
    return piece
