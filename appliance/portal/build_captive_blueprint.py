"""Captive-portal answers: platform probes, foreign hosts (DNS sends every name to the unit) and RFC 8908's API."""

from __future__ import annotations

import ipaddress
import json
from html import escape
from urllib.parse import urlsplit

from flask import Blueprint, Response, request

from appliance.portal.captive_types import (
    CAPTIVE_API_PATH,
    CAPTIVE_JSON_TYPE,
    CAPTIVE_OPEN_PATH,
    CaptiveState,
    ProbeAnswer,
)
from appliance.portal.match_captive_probe import match_captive_probe

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _read_host_name(host: str) -> str:
    """The name without port or final dot, lower-case: "Example.COM.:80" → "example.com", "[::1]:5000" → "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _send_to_portal(portal_url: str) -> Response:
    # Some OSes show the body of the redirect rather than follow it: give them a link.
    link = escape(portal_url, quote=True)
    body = (
        f"<!doctype html><meta charset=utf-8><title>iplm</title>"
        f'<p><a href="{link}">Open the chat on this unit: {link}</a></p>'
    )
    response = Response(body, status=302, mimetype="text/html")
    response.headers["Location"] = portal_url
    response.headers["Cache-Control"] = "no-store"
    return response


def _send_answer(answer: ProbeAnswer) -> Response:
    response = Response(answer.body, status=answer.status)
    if answer.content_type is None:
        del response.headers["Content-Type"]
    else:
        response.headers["Content-Type"] = answer.content_type
    for name, value in answer.headers:
        response.headers[name] = value
    # A cached success would outlive the client's open period.
    response.headers["Cache-Control"] = "no-store"
    return response


def build_captive_blueprint(*, portal_url: str, state: CaptiveState, own_hosts: tuple[str, ...] = ()) -> Blueprint:
    """Redirect probes and foreign hosts to `portal_url` until the chat page has run on the client, then answer
    probes with success (a check before every request of the app, not only this blueprint's).

    `own_hosts` adds names the unit answers to besides portal_url's host, loopback and `*.local` (mDNS).
    """
    captive = Blueprint("captive", __name__)
    unit_names = frozenset(
        {_read_host_name(urlsplit(portal_url).netloc), *_LOOPBACK_NAMES, *(_read_host_name(name) for name in own_hosts)}
    )

    def is_unit_host(host: str) -> bool:
        # *.local: mesh peers and laptops reach the unit by its mDNS name; DNS never sends a phone's web page there.
        return host in unit_names or host.endswith(".local")

    @captive.before_app_request
    def answer_captive_probe():
        if request.path in (CAPTIVE_API_PATH, CAPTIVE_OPEN_PATH):
            return None
        host = _read_host_name(request.host)
        rule = match_captive_probe(host, request.path)
        if rule is not None:
            if rule.answer is None or state.seconds_remaining(request.remote_addr) is None:
                return _send_to_portal(portal_url)
            return _send_answer(rule.answer)
        # A foreign name is here only because the unit's DNS answers every name: show the portal. Bare addresses
        # pass (mesh peers and tools address the unit by IP), as do the unit's own names (its API, assets, /healthz).
        if not is_unit_host(host) and not _is_address(host):
            return _send_to_portal(portal_url)
        return None

    @captive.post(CAPTIVE_OPEN_PATH)
    def remember_portal_opened():
        # Called by the chat page's script once it runs: a person has the portal in front of them. An HTTP
        # GET of "/" is not enough: a phone's background HTTP clients follow the redirect too, and would
        # answer the OS's probe before the sign-in sheet ever showed.
        state.mark_open(request.remote_addr)
        return "", 204

    @captive.get(CAPTIVE_API_PATH)
    def describe_captivity():
        remaining = state.seconds_remaining(request.remote_addr)
        body: dict = {"captive": remaining is None, "user-portal-url": portal_url}
        if remaining is not None:
            body["seconds-remaining"] = int(remaining)
            body["can-extend-session"] = True  # loading the portal again restarts the period
        response = Response(json.dumps(body), mimetype=CAPTIVE_JSON_TYPE)
        response.headers["Cache-Control"] = "private"
        return response

    return captive
