"""The admin API (/api/admin/…): PIN sign-in, the model library with install progress, the default model."""
from __future__ import annotations

import secrets
import shutil
import threading
import time
from typing import Callable

from flask import Flask, g, jsonify, request

from appliance.admin.admin_types import AdminHooks
from appliance.admin.check_admin_pin import check_admin_pin
from appliance.admin.set_admin_pin import set_admin_pin
from appliance.engine.engine_types import Engine, EngineError
from appliance.library.find_model_entry import find_model_entry
from appliance.library.library_errors import LibraryError
from appliance.library.list_models import list_models
from appliance.library.remove_model import remove_model
from appliance.portal.portal_types import ApiError
from appliance.portal.read_json_body import read_json_body

ADMIN_COOKIE = "iplm_admin"
_SESSION_SECONDS = 12 * 3600
# Five wrong PINs per phone in five minutes, then a pause: a 6-digit PIN cannot be walked through.
_MAX_FAILURES, _FAILURE_WINDOW = 5, 300.0
_LIBRARY_ERROR_STATUS = {"model_unknown": 404, "model_not_installed": 404, "install_running": 409,
                         "invalid_model_id": 400, "model_exists": 409}


def _library_error(exc: LibraryError) -> ApiError:
    return ApiError(_LIBRARY_ERROR_STATUS.get(exc.code, 409), exc.message, code=exc.code)


def _object_body() -> dict:
    body = read_json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def register_admin_routes(app: Flask, hooks: AdminHooks, current_engine: Callable[[], Engine]) -> None:
    """Add /api/admin/…; everything but signing in needs the admin cookie that signing in sets."""
    sessions: dict[str, float] = {}
    failures: dict[str, list[float]] = {}
    lock = threading.Lock()

    def is_admin() -> bool:
        token = request.cookies.get(ADMIN_COOKIE, "")
        with lock:
            expires = sessions.get(token)
            if expires is not None and expires < time.monotonic():
                del sessions[token]
                return False
            return expires is not None

    @app.before_request
    def require_admin():
        path = request.path
        if path.startswith("/api/admin/") and path != "/api/admin/session" and not is_admin():
            raise ApiError(401, "Sign in with the unit's admin PIN first.", code="admin_required")

    @app.get("/api/admin/session")
    def describe_session():
        return jsonify({"admin": is_admin()})

    @app.post("/api/admin/session")
    def sign_in():
        now = time.monotonic()
        with lock:
            recent = [t for t in failures.get(g.client_id, []) if now - t < _FAILURE_WINDOW]
            failures[g.client_id] = recent
        if len(recent) >= _MAX_FAILURES:
            raise ApiError(429, "Too many wrong PINs; wait a few minutes.", code="too_many_attempts")
        if not check_admin_pin(_object_body().get("pin")):
            with lock:
                failures[g.client_id].append(now)
            raise ApiError(403, "Wrong PIN.", param="pin", code="wrong_pin")
        token = secrets.token_hex(32)
        with lock:
            failures.pop(g.client_id, None)
            sessions[token] = now + _SESSION_SECONDS
        response = jsonify({"admin": True})
        response.set_cookie(ADMIN_COOKIE, token, max_age=_SESSION_SECONDS, httponly=True, samesite="Strict")
        return response

    @app.delete("/api/admin/session")
    def sign_out():
        with lock:
            sessions.pop(request.cookies.get(ADMIN_COOKIE, ""), None)
        response = jsonify({"admin": False})
        response.delete_cookie(ADMIN_COOKIE)
        return response

    @app.put("/api/admin/pin")
    def change_pin():
        body = _object_body()
        if not check_admin_pin(body.get("current")):
            raise ApiError(403, "The current PIN is wrong.", param="current", code="wrong_pin")
        try:
            set_admin_pin(body.get("new"))
        except ValueError as exc:
            raise ApiError(400, f"New PIN: {exc}.", param="new", code="invalid_pin") from exc
        return "", 204

    @app.get("/api/admin/models")
    def list_library():
        jobs = hooks.jobs.describe()
        models = [{**m, "job": jobs.get(m["id"])} for m in list_models(hooks.node_id, hooks.memory_bytes, hooks.engines)]
        engine = current_engine()
        status = engine.describe_status()
        return jsonify({"models": models, "default_model": engine.model_id,
                        "engine": {"kind": engine.kind, "model": engine.model_id, "state": status.get("state", "ready"),
                                   "failure": status.get("failure")},
                        "disk_free_bytes": shutil.disk_usage(hooks.data_dir).free})

    @app.post("/api/admin/models/<model_id>/install")
    def start_install(model_id: str):
        try:
            find_model_entry(model_id)
            return jsonify({"job": hooks.jobs.start(model_id)}), 202
        except LibraryError as exc:
            raise _library_error(exc) from exc

    @app.delete("/api/admin/models/<model_id>/install")
    def cancel_install(model_id: str):
        job = hooks.jobs.cancel(model_id)
        if job is None:
            raise ApiError(404, f"No install of {model_id} is running.", code="no_install_running")
        return jsonify({"job": job}), 202

    @app.delete("/api/admin/models/<model_id>")
    def remove_installed(model_id: str):
        if model_id == current_engine().model_id:
            raise ApiError(409, f"{model_id} is the model serving chats; choose another default first.",
                           code="model_in_use")
        job = hooks.jobs.describe().get(model_id)
        if job and job["state"] == "running":
            raise ApiError(409, f"{model_id} is being installed; cancel that first.", code="install_running")
        try:
            remove_model(model_id, data_dir=hooks.data_dir, node_id=hooks.node_id)
        except LibraryError as exc:
            raise _library_error(exc) from exc
        return "", 204

    @app.put("/api/admin/default-model")
    def choose_default_model():
        model_id = _object_body().get("model")
        if not isinstance(model_id, str) or not model_id:
            raise ApiError(400, "'model' must be a model id.", param="model", code="invalid_value")
        try:
            hooks.switch_model(model_id)
        except LibraryError as exc:
            raise _library_error(exc) from exc
        except EngineError as exc:
            raise ApiError(409, f"{model_id} cannot run on this unit: {exc.message}", code=exc.code) from exc
        return jsonify({"default_model": current_engine().model_id})
