"""The Flask application factory."""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from appliance.admin.admin_types import AdminHooks
from appliance.engine.engine_types import Engine, EngineError
from appliance.portal.captive_types import CaptiveState
from appliance.portal.identify_client import COOKIE_NAME, identify_client
from appliance.portal.portal_types import ApiError, UnitInfo
from appliance.mesh.agent.describe_unit_presence import describe_unit_presence
from appliance.mesh.key.load_mesh_secrets import load_mesh_secrets
from appliance.portal.register_admin_routes import register_admin_routes
from appliance.portal.register_peer_routes import register_peer_routes
from appliance.portal.register_captive_routes import register_captive_routes
from appliance.portal.register_conversation_routes import register_conversation_routes
from appliance.portal.register_mesh_admin_routes import register_mesh_admin_routes
from appliance.portal.register_openai_routes import register_openai_routes
from appliance.portal.register_webui_routes import register_webui_routes
from appliance.portal.start_captive_state import start_captive_state

_log = logging.getLogger("iplm.portal")
_MAX_BODY_BYTES = 1 << 20
_COOKIE_MAX_AGE = 365 * 24 * 3600


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def render_api_error(exc: ApiError):
        return jsonify(exc.to_json()), exc.status

    @app.errorhandler(EngineError)
    def render_engine_error(exc: EngineError):
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return jsonify(ApiError(exc.status, exc.message, code=exc.code, kind=kind).to_json()), exc.status

    @app.errorhandler(HTTPException)
    def render_http_error(exc: HTTPException):
        return jsonify(ApiError(exc.code or 500, exc.description or exc.name, code=exc.name.lower().replace(" ", "_"),
                                kind="invalid_request_error" if (exc.code or 500) < 500 else "server_error"
                                ).to_json()), exc.code

    @app.errorhandler(Exception)
    def render_unexpected(exc: Exception):
        _log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(ApiError(500, "Internal error; the unit logged it.", code="internal_error",
                                kind="server_error").to_json()), 500


def create_app(current_engine: Callable[[], Engine], unit: UnitInfo, admin: AdminHooks | None = None, *,
               portal_url: str | None = None, captive_state: CaptiveState | None = None,
               mesh_status: Callable[[], dict | None] = lambda: None) -> Flask:
    """Build the portal app; `current_engine()` is the engine (pool) serving now: an admin may switch models."""
    app = Flask("appliance.portal")
    app.config["MAX_CONTENT_LENGTH"] = _MAX_BODY_BYTES
    app.json.sort_keys = False
    _register_errors(app)

    @app.before_request
    def identify_phone():
        g.client_id, g.new_cookie = identify_client(request.cookies.get(COOKIE_NAME))

    @app.after_request
    def remember_phone(response):
        if g.get("new_cookie") and request.path.startswith("/api/"):
            response.set_cookie(COOKIE_NAME, g.new_cookie, max_age=_COOKIE_MAX_AGE, httponly=True, samesite="Lax")
        return response

    @app.get("/healthz")
    def report_health():
        engine = current_engine()
        status = engine.describe_status()
        healthy = status.get("workers_ready", 1) > 0
        # "failed": the engine cannot run on this unit (status["failure"] says why); "degraded": it is restarting.
        verdict = "ok" if healthy else "failed" if status.get("state") == "failed" else "degraded"
        return jsonify({"status": verdict, "time": time.time(),
                        "engine": {"kind": engine.kind, "model": engine.model_id, **status}}), 200 if healthy else 503

    @app.get("/api/unit")
    def describe_unit():
        engine = current_engine()
        status = engine.describe_status()
        defaults = dataclasses.asdict(unit.defaults)
        defaults["max_tokens"] = min(defaults["max_tokens"], engine.n_ctx)
        return jsonify({
            "name": unit.name,
            "engine": engine.kind,
            # "failed" when the engine cannot run here: the chat says so before anyone types.
            "engine_state": status.get("state", "ready"),
            "engine_failure": status.get("failure"),
            "default_model": engine.model_id,
            "models": [{"id": engine.model_id, "engine": engine.kind, "n_ctx": engine.n_ctx}],
            "defaults": defaults,
            "limits": {"max_tokens": [1, engine.n_ctx], "temperature": [0, 2], "top_p": [0, 1]},
            "device": unit.device,
        })

    # OpenAI clients send no cookie: they queue by address (kept in memory only, never stored).
    register_openai_routes(app, current_engine, client_key=lambda: g.client_id if request.cookies.get(COOKIE_NAME) else f"api:{request.remote_addr}")
    register_conversation_routes(app, current_engine)
    if admin is not None:
        register_admin_routes(app, admin, current_engine)
        register_peer_routes(app, data_dir=admin.data_dir, node_id=admin.node_id,
                             load_secrets=lambda: load_mesh_secrets(admin.data_dir))
        # After register_admin_routes: its admin check guards these (they hand out the mesh key).
        register_mesh_admin_routes(
            app, data_dir=admin.data_dir, node_id=admin.node_id, mesh_status=mesh_status,
            describe_self=lambda: describe_unit_presence(
                admin.node_id, name=unit.name, engine=current_engine().kind,
                device_class=str(unit.device.get("board", "")), load=current_engine().describe_status()))
    if portal_url:  # on the unit's AP; without it (development) no request is redirected
        register_captive_routes(app, portal_url=portal_url, state=captive_state or start_captive_state())
    register_webui_routes(app)
    return app
