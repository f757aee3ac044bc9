"""The admin API (/api/admin/…): the model library with install progress, the default model, the PIN, how
long chats are kept.

Every route here, and in the blueprints nested in it (the mesh), needs an open admin session: the
guard is this blueprint's own before_request.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable

from flask import Blueprint, jsonify, request

from appliance.admin.admin_session_types import PinChanged, Refused, SessionKeeper, SessionPresented
from appliance.admin.admin_types import AdminHooks
from appliance.admin.check_admin_pin import check_admin_pin
from appliance.admin.read_pin_version import read_pin_version
from appliance.admin.set_admin_pin import set_admin_pin
from appliance.engine.engine_types import Engine, EngineError
from appliance.library.find_model_entry import find_model_entry
from appliance.library.library_errors import LibraryError
from appliance.library.list_models import list_models
from appliance.library.remove_model import remove_model
from appliance.portal.build_admin_session_blueprint import ADMIN_COOKIE
from appliance.portal.check_admin_reach import check_admin_reach
from appliance.portal.check_same_origin import check_same_origin
from appliance.portal.portal_types import ApiError
from appliance.portal.read_json_object import read_json_object
from appliance.store.describe_chat_storage import describe_chat_storage
from appliance.store.prune_conversations import prune_conversations
from appliance.store.read_store_limits import read_store_limits
from appliance.store.store_types import MAX_RETENTION_DAYS, RETENTION_SETTING
from appliance.store.write_setting import write_setting

_LIBRARY_ERROR_STATUS = {
    "model_unknown": 404,
    "model_not_installed": 404,
    "install_running": 409,
    "invalid_model_id": 400,
    "model_exists": 409,
}


def _library_error(exc: LibraryError) -> ApiError:
    return ApiError(_LIBRARY_ERROR_STATUS.get(exc.code, 409), exc.message, code=exc.code)


def _describe_engine(engine: Engine) -> dict:
    status = engine.describe_status()
    return {
        "kind": engine.kind,
        "model": engine.model_id,
        "state": status.get("state", "ready"),
        "failure": status.get("failure"),
    }


def build_admin_blueprint(
    hooks: AdminHooks, current_engine: Callable[[], Engine], sessions: SessionKeeper, nested: tuple[Blueprint, ...] = ()
) -> Blueprint:
    """The guarded admin routes; `nested` blueprints (the mesh admin) sit under /api/admin behind the same guard."""
    admin = Blueprint("admin", __name__, url_prefix="/api/admin")

    @admin.before_request
    def require_admin():
        check_admin_reach(request.remote_addr, hooks)
        check_same_origin()
        token = request.cookies.get(ADMIN_COOKIE, "")
        outcome = sessions.apply(SessionPresented(token, read_pin_version(), time.monotonic()))
        if isinstance(outcome, Refused):
            raise ApiError(outcome.status, outcome.message, code=outcome.code)

    @admin.put("/pin")
    def change_pin():
        body = read_json_object()
        if not check_admin_pin(body.get("current")):
            raise ApiError(403, "The current PIN is wrong.", param="current", code="wrong_pin")
        try:
            set_admin_pin(body.get("new"))
        except ValueError as exc:
            raise ApiError(400, f"New PIN: {exc}.", param="new", code="invalid_pin") from exc
        # Every other session (another phone, a forgotten tab) ends with the old PIN; this one goes on.
        sessions.apply(PinChanged(request.cookies.get(ADMIN_COOKIE, ""), read_pin_version(), time.monotonic()))
        return "", 204

    @admin.get("/models")
    def list_library():
        jobs = hooks.jobs.describe()
        models = [
            {**model, "job": dataclasses.asdict(jobs[model["id"]]) if model["id"] in jobs else None}
            for model in list_models(hooks.node_id, hooks.memory_bytes, hooks.engines)
        ]
        engine = current_engine()
        return jsonify(
            {
                "models": models,
                "default_model": engine.model_id,
                "engine": _describe_engine(engine),
                "disk_free_bytes": shutil.disk_usage(hooks.data_dir).free,
            }
        )

    @admin.post("/models/<model_id>/install")
    def start_install(model_id: str):
        # {"trust_mesh": true}: the admin takes the mesh's word for a model nothing else vouches for.
        trust_mesh = read_json_object(allow_empty=True).get("trust_mesh", False)
        if not isinstance(trust_mesh, bool):
            raise ApiError(400, "trust_mesh must be true or false.", param="trust_mesh", code="invalid_value")
        try:
            find_model_entry(model_id)
            return jsonify({"job": dataclasses.asdict(hooks.jobs.start(model_id, trust_mesh=trust_mesh))}), 202
        except LibraryError as exc:
            raise _library_error(exc) from exc

    @admin.delete("/models/<model_id>/install")
    def cancel_install(model_id: str):
        job = hooks.jobs.cancel(model_id)
        if job is None:
            raise ApiError(404, f"No install of {model_id} is running.", code="no_install_running")
        return jsonify({"job": dataclasses.asdict(job)}), 202

    @admin.delete("/models/<model_id>")
    def remove_installed(model_id: str):
        if model_id == current_engine().model_id:
            raise ApiError(
                409, f"{model_id} is the model serving chats; choose another default first.", code="model_in_use"
            )
        job = hooks.jobs.describe().get(model_id)
        if job is not None and job.state == "running":
            raise ApiError(409, f"{model_id} is being installed; cancel that first.", code="install_running")
        try:
            remove_model(model_id, data_dir=hooks.data_dir, node_id=hooks.node_id)
        except LibraryError as exc:
            raise _library_error(exc) from exc
        return "", 204

    @admin.put("/default-model")
    def choose_default_model():
        model_id = read_json_object().get("model")
        if not isinstance(model_id, str) or not model_id:
            raise ApiError(400, "'model' must be a model id.", param="model", code="invalid_value")
        try:
            hooks.switch_model(model_id)
        except LibraryError as exc:
            raise _library_error(exc) from exc
        except EngineError as exc:
            raise ApiError(409, f"{model_id} cannot run on this unit: {exc.message}", code=exc.code) from exc
        return jsonify({"default_model": current_engine().model_id})

    @admin.get("/chats")
    def describe_chats():
        return jsonify(describe_chat_storage())

    @admin.put("/chats")
    def set_chat_retention():
        days = read_json_object().get("retention_days")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
            raise ApiError(
                400,
                f"'retention_days' must be a whole number of days from 1 to {MAX_RETENTION_DAYS}.",
                param="retention_days",
                code="invalid_value",
            )
        write_setting(RETENTION_SETTING, days)
        prune_conversations(read_store_limits())  # a shorter retention applies now, not at the next pass
        return jsonify(describe_chat_storage())

    for blueprint in nested:
        admin.register_blueprint(blueprint)
    return admin
