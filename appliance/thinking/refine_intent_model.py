"""Fold the person's answer to a clarifying question into the intent model (pure)."""

from __future__ import annotations

import dataclasses

from appliance.thinking.check_grounded import check_grounded
from appliance.thinking.intent_types import MAX_ITEMS, MAX_TEXT, Ambiguity, IntentModel, Weighted


def _names_reading(answer: str, ambiguity: Ambiguity) -> Weighted | None:
    """The reading of `ambiguity` the answer picks (most of the reading's words in it), if any."""
    return next((reading for reading in ambiguity.readings if check_grounded(reading.text, answer)), None)


def refine_intent_model(intent: IntentModel, answer: str) -> IntentModel:
    """`intent` once the person answered: the ambiguity the answer settles (the one whose reading it names,
    else the most agreed one, which is what was asked about) leaves the model, and what the person said
    becomes a constraint of full confidence: their word, not a sample's."""
    said = " ".join(answer.split())[:MAX_TEXT]
    if not said:
        return intent
    settled, constraint = None, Weighted(said, 1.0)
    for ambiguity in intent.ambiguities:
        reading = _names_reading(said, ambiguity)
        if reading is not None:
            settled = ambiguity
            constraint = Weighted(f"{ambiguity.aspect}: {reading.text}"[:MAX_TEXT], 1.0)
            break
    if settled is None and intent.ambiguities:
        settled = intent.ambiguities[0]
    left = tuple(ambiguity for ambiguity in intent.ambiguities if ambiguity is not settled)
    others = tuple(c for c in intent.constraints if c.text != constraint.text)
    # Held to what a stored model may hold (decode_intent_model's bounds): the oldest constraints go first.
    kept = (constraint, *others)[: MAX_ITEMS * intent.analyses]
    return dataclasses.replace(intent, ambiguities=left, constraints=kept)
