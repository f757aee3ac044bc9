"""Refuse cross-site requests that would act on the admin's behalf (a form on another page the admin visits)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request

from appliance.portal.portal_types import ApiError

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def check_same_origin() -> None:
    """For a request that changes something: a body only as JSON (a cross-site form cannot send that
    without the browser asking first), and, when the browser names the page it came from (Origin), a page
    of this unit. ApiError 415 or 403 otherwise."""
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        raise ApiError(
            403,
            "This request came from a page of another site; the admin API answers the unit's own pages only.",
            code="cross_origin",
        )
    if request.content_length and request.mimetype != "application/json":
        raise ApiError(
            415, "The admin API takes JSON bodies (Content-Type: application/json).", code="unsupported_media_type"
        )
