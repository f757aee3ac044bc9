"""Data shapes of the query intent model (deep thinking, issue 13): what a person wants from a prompt.

The model analyses a prompt several times under INTENT_SCHEMA (sampled, so the analyses may differ);
read_intent_analysis turns each reply into an IntentAnalysis, or None for output that is not one;
merge_intent_analyses makes one IntentModel of them, where every aspect's confidence is the share of
analyses that agree on it: a measure, not the model's say-so (a small model is confident about
everything it writes).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TEXT = 160  # one aspect, as the schema bounds it: a phrase, not a paragraph
MAX_ITEMS = 6
MAX_READINGS = 4

_TEXT = {"type": "string", "maxLength": MAX_TEXT}
_LIST = {"type": "array", "maxItems": MAX_ITEMS, "items": _TEXT}

# In the order a reply fills them: one cut off at its max_tokens still holds what the decision needs.
INTENT_SCHEMA = {
    "type": "object",
    "properties": {
        "goal": _TEXT,
        "ambiguities": {
            "type": "array",
            "maxItems": MAX_READINGS,
            "items": {
                "type": "object",
                "properties": {
                    "aspect": _TEXT,
                    "readings": {"type": "array", "minItems": 2, "maxItems": MAX_READINGS, "items": _TEXT},
                },
                "required": [
                    "goal",
                    "ambiguities",
                    "components",
                    "constraints",
                    "needs",
                    "entities",
                    "terms",
                    "relations",
                ],
            },
        },
        "components": _LIST,
        "constraints": _LIST,
        "needs": _LIST,
        "entities": {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "properties": {"name": _TEXT, "type": _TEXT},
                "required": [
                    "goal",
                    "ambiguities",
                    "components",
                    "constraints",
                    "needs",
                    "entities",
                    "terms",
                    "relations",
                ],
            },
        },
        "terms": {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "properties": {"term": _TEXT, "concept": _TEXT},
                "required": [
                    "goal",
                    "ambiguities",
                    "components",
                    "constraints",
                    "needs",
                    "entities",
                    "terms",
                    "relations",
                ],
            },
        },
        "relations": {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "properties": {"source": _TEXT, "relation": _TEXT, "target": _TEXT},
                "required": [
                    "goal",
                    "ambiguities",
                    "components",
                    "constraints",
                    "needs",
                    "entities",
                    "terms",
                    "relations",
                ],
            },
        },
    },
    "required": ["goal", "ambiguities", "components", "constraints", "needs", "entities", "terms", "relations"],
}


@dataclass(frozen=True)
class IntentAnalysis:
    """One analysis of a prompt, as the model gave it (texts trimmed and bounded)."""

    goal: str
    constraints: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    terms: tuple[tuple[str, str], ...] = ()  # (the person's term, the concept it names)
    entities: tuple[tuple[str, str], ...] = ()  # (name, type)
    relations: tuple[tuple[str, str, str], ...] = ()  # (source, relation, target): a hierarchy, a part-of
    ambiguities: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (aspect, its candidate readings)


@dataclass(frozen=True)
class Weighted:
    """An aspect and its confidence: the share of analyses that agree on it (0 to 1)."""

    text: str
    confidence: float


@dataclass(frozen=True)
class TermMapping:
    term: str
    concept: str
    confidence: float


@dataclass(frozen=True)
class Entity:
    name: str
    kind: str
    confidence: float


@dataclass(frozen=True)
class Relation:
    source: str
    relation: str
    target: str
    confidence: float


@dataclass(frozen=True)
class Ambiguity:
    """An aspect that can be read more than one way. confidence: the share of analyses that saw it;
    readings: each with the share of the analyses that saw the aspect and gave that reading."""

    aspect: str
    readings: tuple[Weighted, ...]
    confidence: float


@dataclass(frozen=True)
class IntentModel:
    """What the person wants, merged from `analyses` analyses. Lists are ordered most agreed first.

    When the analyses disagree on the goal itself, that is an ambiguity too (aspect "goal", each goal
    they gave a reading): the disagreement is the measure a clarifying question needs.
    """

    goal: Weighted
    constraints: tuple[Weighted, ...]
    needs: tuple[Weighted, ...]
    components: tuple[Weighted, ...]
    terms: tuple[TermMapping, ...]
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]
    ambiguities: tuple[Ambiguity, ...]
    analyses: int
