"""Read one of the model's intent analyses: JSON under INTENT_SCHEMA, or None for anything that is not."""

from __future__ import annotations

from appliance.thinking.intent_types import MAX_ITEMS, MAX_READINGS, MAX_TEXT, IntentAnalysis
from appliance.thinking.read_truncated_json import read_truncated_json


def _text(value: object) -> str:
    # The engine's grammar enforces the schema, but a reply cut off at max_tokens, another engine, or a
    # peer's answer may not hold to it: every field is checked here, once.
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:MAX_TEXT]


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(text for text in (_text(item) for item in value[:MAX_ITEMS]) if text))


def _records(value: object, keys: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        return ()
    records = []
    for item in value[:MAX_ITEMS]:
        if isinstance(item, dict):
            fields = tuple(_text(item.get(key)) for key in keys)
            if all(fields):
                records.append(fields)
    return tuple(dict.fromkeys(records))


def _ambiguities(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, list):
        return ()
    found = []
    for item in value[:MAX_READINGS]:
        if not isinstance(item, dict):
            continue
        aspect, readings = _text(item.get("aspect")), _texts(item.get("readings"))[:MAX_READINGS]
        if aspect and len(readings) >= 2:  # one reading is no ambiguity
            found.append((aspect, readings))
    return tuple(found)


def read_intent_analysis(reply: str) -> IntentAnalysis | None:
    """The analysis in `reply`; None when it is not JSON, not an object, or names no goal. A reply cut off
    at its max_tokens (a small model fills every list it may) is read as far as it got."""
    data = read_truncated_json(reply)
    if not isinstance(data, dict):
        return None
    goal = _text(data.get("goal"))
    if not goal:
        return None
    return IntentAnalysis(
        goal=goal,
        constraints=_texts(data.get("constraints")),
        needs=_texts(data.get("needs")),
        components=_texts(data.get("components")),
        terms=tuple((term, concept) for term, concept in _records(data.get("terms"), ("term", "concept"))),
        entities=tuple((name, kind) for name, kind in _records(data.get("entities"), ("name", "type"))),
        relations=tuple(
            (source, relation, target)
            for source, relation, target in _records(data.get("relations"), ("source", "relation", "target"))
        ),
        ambiguities=_ambiguities(data.get("ambiguities")),
    )
