"""Admin sign-in's transitions: one event in, the new sessions and the outcome out (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.admin.admin_session_types import (
    FAILURE_WINDOW_S,
    MAX_FAILURES,
    SESSION_SECONDS,
    AdminSessions,
    Admitted,
    PinChecked,
    Refused,
    SessionEvent,
    SessionOutcome,
    SessionPresented,
    SignedOut,
    SignInAsked,
)
from appliance.route_event import route_event

Step = tuple[AdminSessions, SessionOutcome]
_NOT_SIGNED_IN = Refused(401, "admin_required", "Sign in with the unit's admin PIN first.")


def _recent(state: AdminSessions, client: str, at: float) -> tuple[float, ...]:
    return tuple(t for t in state.failures.get(client, ()) if at - t < FAILURE_WINDOW_S)


def _ask(state: AdminSessions, event: SignInAsked) -> Step:
    recent = _recent(state, event.client, event.at)
    state = dataclasses.replace(
        state,
        failures={**state.failures, event.client: recent}
        if recent
        else {c: times for c, times in state.failures.items() if c != event.client},
    )
    if len(recent) >= MAX_FAILURES:
        return state, Refused(429, "too_many_attempts", "Too many wrong PINs; wait a few minutes.")
    return state, Admitted()


def _check(state: AdminSessions, event: PinChecked) -> Step:
    if not event.correct:
        failures = {**state.failures, event.client: _recent(state, event.client, event.at) + (event.at,)}
        return dataclasses.replace(state, failures=failures), Refused(403, "wrong_pin", "Wrong PIN.")
    failures = {c: times for c, times in state.failures.items() if c != event.client}
    sessions = {**state.sessions, event.token: event.at + SESSION_SECONDS}
    return dataclasses.replace(state, failures=failures, sessions=sessions), Admitted(event.token)


def _present(state: AdminSessions, event: SessionPresented) -> Step:
    expires = state.sessions.get(event.token)
    if expires is None:
        return state, _NOT_SIGNED_IN
    if expires < event.at:
        return dataclasses.replace(
            state, sessions={t: e for t, e in state.sessions.items() if t != event.token}
        ), _NOT_SIGNED_IN
    return state, Admitted(event.token)


def _sign_out(state: AdminSessions, event: SignedOut) -> Step:
    return dataclasses.replace(
        state, sessions={t: e for t, e in state.sessions.items() if t != event.token}
    ), _NOT_SIGNED_IN


_TRANSITIONS: dict[type, Callable[[AdminSessions, Any], Step]] = {
    SignInAsked: _ask,
    PinChecked: _check,
    SessionPresented: _present,
    SignedOut: _sign_out,
}


def apply_session_event(state: AdminSessions, event: SessionEvent) -> Step:
    """The sessions after `event`, and what the request that caused it gets; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "admin sign-in")
