"""Admin sign-in's transitions, one event at a time: no PIN hashing, no HTTP, no clock."""

import pytest

from appliance.admin.admin_session_types import (
    FAILURE_WINDOW_S,
    MAX_FAILURES,
    SESSION_SECONDS,
    AdminSessions,
    Admitted,
    PinChecked,
    Refused,
    SessionPresented,
    SignedOut,
    SignInAsked,
)
from appliance.admin.apply_session_event import apply_session_event


def _sign_in(state, client, correct, at, token="t1"):
    state, asked = apply_session_event(state, SignInAsked(client, at))
    if isinstance(asked, Refused):
        return state, asked
    return apply_session_event(state, PinChecked(client, correct, token, at))


def test_the_right_pin_opens_a_session_until_it_expires():
    state, outcome = _sign_in(AdminSessions(), "phone", True, 100.0)
    assert outcome == Admitted("t1")
    assert apply_session_event(state, SessionPresented("t1", 100.0 + SESSION_SECONDS))[1] == Admitted("t1")
    state, outcome = apply_session_event(state, SessionPresented("t1", 100.0 + SESSION_SECONDS + 1))
    assert isinstance(outcome, Refused) and outcome.status == 401 and state.sessions == {}


def test_wrong_pins_are_counted_per_client_and_then_even_the_right_one_waits():
    state = AdminSessions()
    for attempt in range(MAX_FAILURES):
        state, outcome = _sign_in(state, "phone", False, 100.0 + attempt)
        assert outcome.status == 403 and outcome.code == "wrong_pin"
    state, outcome = _sign_in(state, "phone", True, 110.0)
    assert outcome.status == 429 and state.sessions == {}
    assert _sign_in(state, "other phone", True, 110.0)[1] == Admitted("t1")
    state, outcome = _sign_in(state, "phone", True, 100.0 + MAX_FAILURES - 1 + FAILURE_WINDOW_S)
    assert outcome == Admitted("t1") and "phone" not in state.failures


def test_unknown_tokens_and_signed_out_sessions_are_refused():
    state, _ = _sign_in(AdminSessions(), "phone", True, 100.0)
    assert isinstance(apply_session_event(state, SessionPresented("forged", 101.0))[1], Refused)
    state, _ = apply_session_event(state, SignedOut("t1"))
    assert isinstance(apply_session_event(state, SessionPresented("t1", 102.0))[1], Refused)


def test_unknown_events_are_refused():
    with pytest.raises(TypeError):
        apply_session_event(AdminSessions(), object())
