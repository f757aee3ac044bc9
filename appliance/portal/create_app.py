"""The Flask application factory: the portal's blueprints, one per area, and its error handlers."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import cast

from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from appliance.admin.admin_types import AdminHooks
from appliance.admin.start_admin_sessions import start_admin_sessions
from appliance.engine.engine_types import Engine, EngineError
from appliance.mesh.agent.describe_unit_presence import describe_unit_presence
from appliance.mesh.agent.presence_types import PeerEntry
from appliance.mesh.identity.load_unit_identity import load_unit_identity
from appliance.mesh.key.load_mesh_secrets import load_mesh_secrets
from appliance.portal.build_admin_blueprint import build_admin_blueprint
from appliance.portal.build_admin_session_blueprint import build_admin_session_blueprint
from appliance.portal.build_captive_blueprint import build_captive_blueprint
from appliance.portal.build_chat_api_blueprint import build_chat_api_blueprint
from appliance.portal.build_conversations_blueprint import build_conversations_blueprint
from appliance.portal.build_mesh_admin_blueprint import build_mesh_admin_blueprint
from appliance.portal.build_peer_blueprint import build_peer_blueprint
from appliance.portal.build_unit_blueprint import build_unit_blueprint
from appliance.portal.build_webui_blueprint import build_webui_blueprint
from appliance.portal.captive_types import CaptiveState
from appliance.portal.identify_client import COOKIE_NAME, identify_client
from appliance.portal.portal_types import ApiError, UnitInfo
from appliance.portal.start_captive_state import start_captive_state
from appliance.portal.start_storage_budgets import start_storage_budgets
from appliance.portal.storage_budget_types import StorageBudgetKeeper

_log = logging.getLogger("iplm.portal")
_MAX_BODY_BYTES = 1 << 20
_COOKIE_MAX_AGE = 365 * 24 * 3600


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def render_api_error(exc: ApiError):
        response = jsonify(exc.to_json())
        if exc.retry_after_s is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response, exc.status

    @app.errorhandler(EngineError)
    def render_engine_error(exc: EngineError):
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        error = ApiError(exc.status, exc.message, code=exc.code, kind=kind, retry_after_s=exc.retry_after_s)
        return render_api_error(error)

    @app.errorhandler(HTTPException)
    def render_http_error(exc: HTTPException):
        return jsonify(
            ApiError(
                exc.code or 500,
                exc.description or exc.name,
                code=exc.name.lower().replace(" ", "_"),
                kind="invalid_request_error" if (exc.code or 500) < 500 else "server_error",
            ).to_json()
        ), exc.code

    @app.errorhandler(Exception)
    def render_unexpected(exc: Exception):
        _log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(
            ApiError(500, "Internal error; the unit logged it.", code="internal_error", kind="server_error").to_json()
        ), 500


def _register_phone_identity(app: Flask) -> None:
    @app.before_request
    def identify_phone():
        g.client_id, g.new_cookie = identify_client(request.cookies.get(COOKIE_NAME))

    @app.after_request
    def remember_phone(response):
        if g.get("new_cookie") and request.path.startswith("/api/"):
            response.set_cookie(COOKIE_NAME, g.new_cookie, max_age=_COOKIE_MAX_AGE, httponly=True, samesite="Lax")
        return response


def create_app(
    current_engine: Callable[[], Engine],
    unit: UnitInfo,
    admin: AdminHooks | None = None,
    *,
    portal_url: str | None = None,
    captive_state: CaptiveState | None = None,
    mesh_status: Callable[[], dict[str, PeerEntry] | None] = lambda: None,
    peer_clock_offset: Callable[[str], int | None] = lambda _node: None,
    storage_budgets: StorageBudgetKeeper | None = None,
) -> Flask:
    """Build the portal app; `current_engine()` is the engine (pool) serving now: an admin may switch models.
    `peer_clock_offset(node)`: how far that unit's clock is ahead of ours in ms, as the mesh agent saw it."""
    app = Flask("appliance.portal")
    app.config["MAX_CONTENT_LENGTH"] = _MAX_BODY_BYTES
    cast(DefaultJSONProvider, app.json).sort_keys = False
    _register_errors(app)
    _register_phone_identity(app)
    app.register_blueprint(build_unit_blueprint(current_engine, unit))
    app.register_blueprint(build_chat_api_blueprint(current_engine))
    app.register_blueprint(build_conversations_blueprint(current_engine, storage_budgets or start_storage_budgets()))
    if admin is not None:
        sessions = start_admin_sessions()
        mesh_admin = build_mesh_admin_blueprint(
            data_dir=admin.data_dir,
            node_id=admin.node_id,
            mesh_status=mesh_status,
            describe_self=lambda: describe_unit_presence(
                admin.node_id,
                name=unit.name,
                engine=current_engine().kind,
                device_class=str(unit.device.get("board", "")),
                load=current_engine().describe_status(),
            ),
            use_mesh_key=admin.use_mesh_key,
        )
        app.register_blueprint(build_admin_session_blueprint(sessions, admin))
        app.register_blueprint(build_admin_blueprint(admin, current_engine, sessions, nested=(mesh_admin,)))
        app.register_blueprint(
            build_peer_blueprint(
                data_dir=admin.data_dir,
                node_id=admin.node_id,
                load_secrets=lambda: load_mesh_secrets(admin.data_dir),
                load_identity=lambda: load_unit_identity(admin.data_dir, admin.node_id),
                clock_offset_ms=peer_clock_offset,
            )
        )
    if portal_url:  # on the unit's AP; without it (development) no request is redirected
        app.register_blueprint(
            build_captive_blueprint(portal_url=portal_url, state=captive_state or start_captive_state())
        )
    app.register_blueprint(build_webui_blueprint())
    return app
