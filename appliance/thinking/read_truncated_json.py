"""Read JSON that a reply cut off at max_tokens left unfinished: the longest prefix that closes cleanly."""

from __future__ import annotations

import json

# A reply is bounded by its max_tokens (a few kilobytes); more than this many cut points are never tried.
_MOST_TRIES = 64
_CLOSERS = {"{": "}", "[": "]"}
# Deeper than this is no reply worth reading (an intent analysis nests four deep); it also bounds the work.
_MOST_DEPTH = 32


def _cut_points(text: str) -> list[tuple[int, str]]:
    """(position just after a complete value or an opening bracket, the closers the open brackets need
    there), in text order."""
    points: list[tuple[int, str]] = []
    stack: list[str] = []
    in_string = escaped = False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                points.append((position + 1, "".join(reversed(stack))))
            continue
        if char == '"':
            in_string = True
        elif char in _CLOSERS:
            if len(stack) >= _MOST_DEPTH:
                break
            stack.append(_CLOSERS[char])
            points.append((position + 1, "".join(reversed(stack))))
        elif char in "}]":
            if not stack or stack[-1] != char:
                break  # not JSON from here on: what came before is all there is
            stack.pop()
            points.append((position + 1, "".join(reversed(stack))))
    return points


def read_truncated_json(text: str) -> object | None:
    """The JSON value `text` holds, or, when it was cut off, the value its longest cleanly closable prefix
    holds (an unfinished string or key is dropped, the open brackets closed); None when there is none."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    for end, closers in reversed(_cut_points(text)[-_MOST_TRIES:]):
        head = text[:end].rstrip()
        try:
            return json.loads(head + closers)
        except (ValueError, RecursionError):
            # A cut just after a key ("goal") or a comma: drop the dangling part and try the next point.
            continue
    return None
