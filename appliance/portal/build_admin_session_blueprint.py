"""Admin sign-in (/api/admin/session): the one admin route open to everyone."""

from __future__ import annotations

import secrets
import time

from flask import Blueprint, g, jsonify, request

from appliance.admin.admin_session_types import (
    SESSION_SECONDS,
    PinChecked,
    Refused,
    SessionKeeper,
    SessionPresented,
    SignedOut,
    SignInAsked,
)
from appliance.admin.check_admin_pin import check_admin_pin
from appliance.portal.portal_types import ApiError
from appliance.portal.read_json_object import read_json_object

ADMIN_COOKIE = "iplm_admin"


def build_admin_session_blueprint(sessions: SessionKeeper) -> Blueprint:
    """GET (am I signed in?), POST {"pin"} (sign in: sets the admin cookie), DELETE (sign out)."""
    session = Blueprint("admin_session", __name__, url_prefix="/api/admin/session")

    @session.get("")
    def describe_session():
        outcome = sessions.apply(SessionPresented(request.cookies.get(ADMIN_COOKIE, ""), time.monotonic()))
        return jsonify({"admin": not isinstance(outcome, Refused)})

    @session.post("")
    def sign_in():
        asked = sessions.apply(SignInAsked(g.client_id, time.monotonic()))
        if isinstance(asked, Refused):  # before the PIN is hashed: a locked-out phone costs nothing
            raise ApiError(asked.status, asked.message, code=asked.code)
        correct = check_admin_pin(read_json_object().get("pin"))
        outcome = sessions.apply(PinChecked(g.client_id, correct, secrets.token_hex(32), time.monotonic()))
        if isinstance(outcome, Refused):
            raise ApiError(outcome.status, outcome.message, param="pin", code=outcome.code)
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
