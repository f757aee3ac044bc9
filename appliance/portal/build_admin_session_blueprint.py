"""Admin sign-in (/api/admin/session): the one admin route open without a session."""

from __future__ import annotations

import secrets
import time

from flask import Blueprint, jsonify, request

from appliance.admin.admin_session_types import (
    LOCK_SETTING,
    SESSION_SECONDS,
    PinChecked,
    Refused,
    SessionKeeper,
    SessionPresented,
    SignedOut,
    SignInAsked,
)
from appliance.admin.admin_types import AdminHooks
from appliance.admin.check_admin_pin import check_admin_pin
from appliance.admin.read_pin_version import read_pin_version
from appliance.portal.check_admin_reach import check_admin_reach
from appliance.portal.check_same_origin import check_same_origin
from appliance.portal.portal_types import ApiError
from appliance.portal.read_json_object import read_json_object
from appliance.store.read_setting import read_setting
from appliance.store.write_setting import write_setting

ADMIN_COOKIE = "iplm_admin"


def _refuse(outcome: Refused, param: str | None = None) -> ApiError:
    return ApiError(
        outcome.status, outcome.message, param=param, code=outcome.code, retry_after_s=outcome.retry_after_s
    )


def build_admin_session_blueprint(sessions: SessionKeeper, hooks: AdminHooks) -> Blueprint:
    """GET (am I signed in?), POST {"pin"} (sign in: sets the admin cookie), DELETE (sign out)."""
    session = Blueprint("admin_session", __name__, url_prefix="/api/admin/session")

    @session.before_request
    def require_owner_network():
        check_admin_reach(request.remote_addr, hooks)
        check_same_origin()

    @session.get("")
    def describe_session():
        token = request.cookies.get(ADMIN_COOKIE, "")
        outcome = sessions.apply(SessionPresented(token, read_pin_version(), time.monotonic()))
        return jsonify({"admin": not isinstance(outcome, Refused)})

    @session.post("")
    def sign_in():
        # Counted by address, not cookie: a client chooses its cookie, not (on the unit's Wi-Fi) its address.
        address = request.remote_addr or ""
        locked = read_setting(LOCK_SETTING, False) is True
        asked = sessions.apply(SignInAsked(address, time.monotonic(), read_pin_version(), locked=locked))
        if isinstance(asked, Refused):  # before the PIN is hashed: a waiting client costs nothing
            raise _refuse(asked)
        correct = check_admin_pin(read_json_object().get("pin"))
        outcome = sessions.apply(
            PinChecked(address, correct, secrets.token_hex(32), read_pin_version(), time.monotonic())
        )
        if isinstance(outcome, Refused):
            if outcome.lock:
                write_setting(LOCK_SETTING, True)  # until `iplm admin reset-pin`, restarts included
            raise _refuse(outcome, param="pin")
        response = jsonify({"admin": True})
        response.set_cookie(ADMIN_COOKIE, outcome.token, max_age=SESSION_SECONDS, httponly=True, samesite="Strict")
        return response

    @session.delete("")
    def sign_out():
        sessions.apply(SignedOut(request.cookies.get(ADMIN_COOKIE, "")))
        response = jsonify({"admin": False})
        response.delete_cookie(ADMIN_COOKIE)
        return response

    return session
