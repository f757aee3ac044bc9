"""Read a stored intent model back: every field checked, anything else is no model (never a crash)."""

from __future__ import annotations

import json
import math

from appliance.thinking.encode_intent_model import INTENT_FORMAT
from appliance.thinking.intent_types import (
    MAX_ITEMS,
    MAX_READINGS,
    MAX_TEXT,
    Ambiguity,
    Entity,
    IntentModel,
    Relation,
    TermMapping,
    Weighted,
)


class _Bad(ValueError):
    pass


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise _Bad("text")
    return value


def _share(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad("confidence")
    if not 0.0 <= value <= 1.0:
        raise _Bad("confidence")
    return float(value)


def _items(value: object, limit: int) -> list[dict]:
    if not isinstance(value, list) or len(value) > limit or not all(isinstance(item, dict) for item in value):
        raise _Bad("list")
    return value


def _weighted(item: dict) -> Weighted:
    return Weighted(_text(item.get("text")), _share(item.get("confidence")))


def _decode(data: dict) -> IntentModel:
    goal = data.get("goal")
    if not isinstance(goal, dict):
        raise _Bad("goal")
    analyses = data.get("analyses")
    if isinstance(analyses, bool) or not isinstance(analyses, int) or not 1 <= analyses <= 64:
        raise _Bad("analyses")
    # Merged lists hold at most what every analysis gave, when no two agree: per analysis MAX_ITEMS items,
    # MAX_READINGS ambiguities of MAX_READINGS readings each, and one goal (the goal's ambiguity).
    most = MAX_ITEMS * analyses
    ambiguities = [
        Ambiguity(
            _text(item.get("aspect")),
            tuple(_weighted(reading) for reading in _items(item.get("readings"), MAX_READINGS * analyses)),
            _share(item.get("confidence")),
        )
        for item in _items(data.get("ambiguities"), MAX_READINGS * analyses + 1)
    ]
    return IntentModel(
        goal=_weighted(goal),
        constraints=tuple(_weighted(item) for item in _items(data.get("constraints"), most)),
        needs=tuple(_weighted(item) for item in _items(data.get("needs"), most)),
        components=tuple(_weighted(item) for item in _items(data.get("components"), most)),
        terms=tuple(
            TermMapping(_text(i.get("term")), _text(i.get("concept")), _share(i.get("confidence")))
            for i in _items(data.get("terms"), most)
        ),
        entities=tuple(
            Entity(_text(i.get("name")), _text(i.get("kind")), _share(i.get("confidence")))
            for i in _items(data.get("entities"), most)
        ),
        relations=tuple(
            Relation(
                _text(i.get("source")), _text(i.get("relation")), _text(i.get("target")), _share(i.get("confidence"))
            )
            for i in _items(data.get("relations"), most)
        ),
        ambiguities=tuple(ambiguities),
        analyses=analyses,
    )


def decode_intent_model(text: str) -> IntentModel | None:
    """The intent model encode_intent_model wrote; None for a row of another format or anything broken."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != INTENT_FORMAT:
            return None
        return _decode(data)
    except (ValueError, RecursionError, TypeError):
        return None
