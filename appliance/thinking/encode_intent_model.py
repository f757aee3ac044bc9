"""An intent model as JSON, for the conversation's stored row (decode_intent_model reads it back)."""

from __future__ import annotations

import dataclasses
import json

from appliance.thinking.intent_types import IntentModel

INTENT_FORMAT = 1  # bumped when the shape changes: a row of another format is read as no model


def encode_intent_model(intent: IntentModel) -> str:
    """Compact JSON of `intent`, with its format number."""
    return json.dumps({"format": INTENT_FORMAT, **dataclasses.asdict(intent)}, separators=(",", ":"))
