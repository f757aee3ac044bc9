"""What the unit says about itself: /healthz (for monitors and the mesh) and /api/unit (for the web app)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from flask import Blueprint, jsonify

from appliance.engine.engine_types import Engine
from appliance.portal.portal_types import UnitInfo
from appliance.store.read_store_limits import read_store_limits
from appliance.thinking.plan_thinking_budget import plan_thinking_budget
from appliance.thinking.thinking_types import MAX_CALLS, MAX_SECONDS, MIN_CALLS, MIN_SECONDS


def build_unit_blueprint(current_engine: Callable[[], Engine], unit: UnitInfo) -> Blueprint:
    """GET /healthz (200 while a worker is ready, 503 otherwise) and GET /api/unit."""
    about = Blueprint("unit", __name__)

    @about.get("/healthz")
    def report_health():
        engine = current_engine()
        status = engine.describe_status()
        healthy = status.get("workers_ready", 1) > 0
        # "failed": the engine cannot run on this unit (status["failure"] says why); "degraded": it is restarting.
        verdict = "ok" if healthy else "failed" if status.get("state") == "failed" else "degraded"
        return jsonify(
            {
                "status": verdict,
                "time": time.time(),
                "engine": {"kind": engine.kind, "model": engine.model_id, **status},
            }
        ), 200 if healthy else 503

    @about.get("/api/unit")
    def describe_unit():
        engine = current_engine()
        status = engine.describe_status()
        defaults = dataclasses.asdict(unit.defaults)
        defaults["max_tokens"] = min(defaults["max_tokens"], engine.n_ctx)
        # Deep thinking's budget as the unit sets it (effort medium, this unit's own sequences); a phone may
        # override it within the limits.
        width = max(1, int(status.get("slots_ready") or engine.sequences))
        budget = plan_thinking_budget("medium", engine_kind=engine.kind, width=width)
        if budget is not None:
            defaults["max_calls"], defaults["max_seconds"] = budget.max_calls, budget.max_seconds
        return jsonify(
            {
                "name": unit.name,
                "engine": engine.kind,
                # "failed" when the engine cannot run here: the chat says so before anyone types.
                "engine_state": status.get("state", "ready"),
                "engine_failure": status.get("failure"),
                "default_model": engine.model_id,
                "models": [{"id": engine.model_id, "engine": engine.kind, "n_ctx": engine.n_ctx}],
                "defaults": defaults,
                "limits": {
                    "max_tokens": [1, engine.n_ctx],
                    "temperature": [0, 2],
                    "top_p": [0, 1],
                    "max_calls": [MIN_CALLS, MAX_CALLS],
                    "max_seconds": [MIN_SECONDS, MAX_SECONDS],
                },
                "device": unit.device,
                # The phone is told how long its chats stay on this unit.
                "chat_retention_days": read_store_limits().retention_days,
            }
        )

    return about
