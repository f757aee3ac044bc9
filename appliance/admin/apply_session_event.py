"""Admin sign-in's transitions: one event in, the new sessions and the outcome out (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.admin.admin_session_types import (
    FORGET_AFTER_S,
    FREE_TRIES,
    MAX_ADDRESSES,
    MAX_BACKOFF_S,
    SESSION_IDLE_SECONDS,
    SESSION_SECONDS,
    UNIT_LOCK_AFTER,
    AddressFailures,
    AdminSessions,
    Admitted,
    PinChanged,
    PinChecked,
    Refused,
    Session,
    SessionEvent,
    SessionOutcome,
    SessionPresented,
    SignedOut,
    SignInAsked,
)
from appliance.route_event import route_event

Step = tuple[AdminSessions, SessionOutcome]
_NOT_SIGNED_IN = Refused(401, "admin_required", "Sign in with the unit's admin PIN first.")
_LOCKED = Refused(
    423,
    "signin_locked",
    "Sign-in is locked: too many wrong PINs were tried on this unit. The owner unlocks it with "
    "`iplm admin reset-pin` on the unit (it prints a new PIN).",
)


def _wait_after(failures: AddressFailures) -> float:
    if failures.count < FREE_TRIES:
        return 0.0
    return min(MAX_BACKOFF_S, 2.0 ** (failures.count - FREE_TRIES))


def _forget_stale(failures: dict[str, AddressFailures], at: float) -> dict[str, AddressFailures]:
    kept = {a: f for a, f in failures.items() if at - f.last_at < FORGET_AFTER_S}
    if len(kept) <= MAX_ADDRESSES:
        return kept
    newest = sorted(kept.items(), key=lambda item: item[1].last_at)[-MAX_ADDRESSES:]
    return dict(newest)


def _ask(state: AdminSessions, event: SignInAsked) -> Step:
    if state.locked_pin_version is not None and state.locked_pin_version != event.pin_version:
        # The owner reset the PIN on the unit (which clears the lock): start counting afresh.
        state = dataclasses.replace(state, locked_pin_version=None, unit_failures=0, failures={})
    elif event.locked and state.locked_pin_version is None:
        state = dataclasses.replace(state, locked_pin_version=event.pin_version)  # locked before a restart
    if state.locked_pin_version is not None:
        return state, _LOCKED
    failures = _forget_stale(state.failures, event.at)
    known = failures.get(event.address, AddressFailures(0, event.at))
    ready_at = known.last_at + _wait_after(known)
    if event.at < ready_at:
        wait = ready_at - event.at
        refusal = Refused(
            429, "too_many_attempts", f"Too many wrong PINs from here; try again in {wait:.0f} s.", retry_after_s=wait
        )
        return dataclasses.replace(state, failures=failures), refusal
    # Counted as a wrong PIN now, in the same step as the check: tries sent at once cannot all slip
    # through before the first is counted. A right PIN takes it back (PinChecked).
    failures = {**failures, event.address: AddressFailures(known.count + 1, event.at)}
    state = dataclasses.replace(state, failures=failures, unit_failures=state.unit_failures + 1)
    return state, Admitted()


def _check(state: AdminSessions, event: PinChecked) -> Step:
    if not event.correct:
        if state.unit_failures >= UNIT_LOCK_AFTER:
            locked = dataclasses.replace(state, locked_pin_version=event.pin_version)
            return locked, dataclasses.replace(_LOCKED, lock=True)
        return state, Refused(403, "wrong_pin", "Wrong PIN.")
    failures = {a: f for a, f in state.failures.items() if a != event.address}
    session = Session(expires_at=event.at + SESSION_SECONDS, last_seen=event.at, pin_version=event.pin_version)
    sessions = {**_live_sessions(state, event.pin_version, event.at), event.token: session}
    return dataclasses.replace(state, failures=failures, sessions=sessions, unit_failures=0), Admitted(event.token)


def _is_live(session: Session, pin_version: str, at: float) -> bool:
    return (
        session.pin_version == pin_version
        and at <= session.expires_at
        and at - session.last_seen <= SESSION_IDLE_SECONDS
    )


def _live_sessions(state: AdminSessions, pin_version: str, at: float) -> dict[str, Session]:
    return {token: s for token, s in state.sessions.items() if _is_live(s, pin_version, at)}


def _present(state: AdminSessions, event: SessionPresented) -> Step:
    sessions = _live_sessions(state, event.pin_version, event.at)
    session = sessions.get(event.token)
    if session is None:
        return dataclasses.replace(state, sessions=sessions), _NOT_SIGNED_IN
    sessions = {**sessions, event.token: dataclasses.replace(session, last_seen=event.at)}
    return dataclasses.replace(state, sessions=sessions), Admitted(event.token)


def _change_pin(state: AdminSessions, event: PinChanged) -> Step:
    session = state.sessions.get(event.token)
    if session is None:
        return dataclasses.replace(state, sessions={}), _NOT_SIGNED_IN
    kept = dataclasses.replace(session, pin_version=event.pin_version, last_seen=event.at)
    return dataclasses.replace(state, sessions={event.token: kept}), Admitted(event.token)


def _sign_out(state: AdminSessions, event: SignedOut) -> Step:
    sessions = {t: s for t, s in state.sessions.items() if t != event.token}
    return dataclasses.replace(state, sessions=sessions), _NOT_SIGNED_IN


_TRANSITIONS: dict[type, Callable[[AdminSessions, Any], Step]] = {
    SignInAsked: _ask,
    PinChecked: _check,
    SessionPresented: _present,
    PinChanged: _change_pin,
    SignedOut: _sign_out,
}


def apply_session_event(state: AdminSessions, event: SessionEvent) -> Step:
    """The sessions after `event`, and what the request that caused it gets; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "admin sign-in")
