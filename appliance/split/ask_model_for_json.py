"""The model planner's question: one prompt to the unit's own engine, its reply held to a JSON schema."""

from __future__ import annotations

import threading

from appliance.engine.engine_types import ChatParams, ChatRequest, Engine

# The planner's JSON: up to six pieces, a title (80 characters) and a prompt (240) each, in whole.
PLANNER_MAX_TOKENS = 700


def ask_model_for_json(engine: Engine, prompt: str, schema: dict) -> str:
    """The reply text (JSON the engine's grammar enforced); EngineError propagates (the planner then cuts
    by the rules)."""
    params = ChatParams(max_tokens=PLANNER_MAX_TOKENS, temperature=0.0, json_schema=schema)
    request = ChatRequest(messages=({"role": "user", "content": prompt},), params=params, client_key="iplm-planner")
    return "".join(event.text for event in engine.stream_chat(request, threading.Event()) if event.kind == "delta")
