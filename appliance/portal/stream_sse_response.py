"""A streaming text/event-stream response: one `data:` event per payload, sent as soon as it is made."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Response

DONE = object()  # a payload that is sent as the literal `[DONE]` (OpenAI's end of stream)


def _format_event(payload: object) -> bytes:
    if payload is DONE:
        return b"data: [DONE]\n\n"
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def stream_sse_response(payloads: Iterator[object]) -> Response:
    """Send each payload (JSON-able, or DONE) as a server-sent event; no caching, no proxy buffering."""
    return Response(
        (_format_event(payload) for payload in payloads),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
