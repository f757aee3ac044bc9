"""How many clarifying questions of the unit's a stateless (API) history has just had answered."""

from __future__ import annotations

import re
from collections.abc import Sequence

from appliance.thinking.clarify_types import CLARIFY_BUDGET, QUESTIONS
from appliance.thinking.intent_types import MAX_TEXT

_ASKED = tuple(
    re.compile("".join(re.escape(piece) if piece != "{words}" else f".{{1,{MAX_TEXT}}}" for piece in parts) + r"\Z")
    for parts in (re.split(r"(\{words\})", question) for question in QUESTIONS.values())
)


def _is_clarification(text: str) -> bool:
    text = text.strip()
    return len(text) <= 2 * MAX_TEXT + 120 and any(pattern.match(text) for pattern in _ASKED)


def count_asked_clarifications(messages: Sequence[dict]) -> int:
    """The number of (the unit's clarifying question, the person's answer) pairs that end `messages`, up to
    CLARIFY_BUDGET: the newest user message answers the last of them. A client that writes such a question
    itself only changes how its own prompt is thought about."""
    asked, at = 0, len(messages) - 1
    while asked < CLARIFY_BUDGET and at >= 2:
        answer, question = messages[at], messages[at - 1]
        if answer["role"] != "user" or question["role"] != "assistant" or not _is_clarification(question["content"]):
            break
        asked, at = asked + 1, at - 2
    return asked
