"""Admin sign-in's transitions, one event at a time: no PIN hashing, no HTTP, no clock."""

import pytest

from appliance.admin.admin_session_types import (
    FREE_TRIES,
    MAX_ADDRESSES,
    SESSION_IDLE_SECONDS,
    SESSION_SECONDS,
    UNIT_LOCK_AFTER,
    AdminSessions,
    Admitted,
    PinChanged,
    PinChecked,
    Refused,
    SessionPresented,
    SignedOut,
    SignInAsked,
)
from appliance.admin.apply_session_event import apply_session_event

V1, V2 = "pin-v1", "pin-v2"


def _sign_in(state, address, correct, at, token="t1", locked=False, version=V1):
    state, asked = apply_session_event(state, SignInAsked(address, at, version, locked=locked))
    if isinstance(asked, Refused):
        return state, asked
    return apply_session_event(state, PinChecked(address, correct, token, version, at))


def _present(state, token, at, version=V1):
    return apply_session_event(state, SessionPresented(token, version, at))


def test_the_right_pin_opens_a_session_that_ends_when_idle_or_old():
    state, outcome = _sign_in(AdminSessions(), "10.0.0.5", True, 100.0)
    assert outcome == Admitted("t1")
    at = 100.0
    while at + SESSION_IDLE_SECONDS - 1 < 100.0 + SESSION_SECONDS:  # kept busy: lives its whole span
        at += SESSION_IDLE_SECONDS - 1
        state, outcome = _present(state, "t1", at)
        assert outcome == Admitted("t1")
    state, outcome = _present(state, "t1", 100.0 + SESSION_SECONDS + 1)
    assert outcome.status == 401 and state.sessions == {}
    state, _ = _sign_in(state, "10.0.0.5", True, 1000.0, token="t2")
    state, outcome = _present(state, "t2", 1000.0 + SESSION_IDLE_SECONDS + 1)  # left open, untouched
    assert outcome.status == 401


def test_wrong_pins_slow_down_their_address_more_each_time_and_not_other_addresses():
    state, at = AdminSessions(), 100.0
    for _ in range(FREE_TRIES):
        state, outcome = _sign_in(state, "10.0.0.66", False, at)
        assert outcome.code == "wrong_pin"
    waits = []
    for _ in range(4):
        state, refused = apply_session_event(state, SignInAsked("10.0.0.66", at))
        assert refused.status == 429 and refused.code == "too_many_attempts"
        waits.append(refused.retry_after_s)
        at += refused.retry_after_s
        state, outcome = _sign_in(state, "10.0.0.66", False, at)  # the next try, exactly when allowed
        assert outcome.code == "wrong_pin"
    assert waits == [1.0, 2.0, 4.0, 8.0]
    # Even the right PIN waits its turn; another address does not.
    assert _sign_in(state, "10.0.0.66", True, at)[1].status == 429
    assert _sign_in(state, "10.0.0.7", True, at)[1] == Admitted("t1")
    state, outcome = _sign_in(state, "10.0.0.66", True, at + 16.0)
    assert outcome == Admitted("t1") and "10.0.0.66" not in state.failures


def test_tries_sent_at_once_are_counted_before_any_pin_is_checked():
    state = AdminSessions()
    admitted = 0
    for _ in range(10):  # ten requests arrive together; none has been checked yet
        state, outcome = apply_session_event(state, SignInAsked("10.0.0.66", 100.0))
        admitted += isinstance(outcome, Admitted)
    assert admitted == FREE_TRIES


def test_wrong_pins_unit_wide_lock_sign_in_until_the_owner_resets():
    state, outcome = AdminSessions(), None
    for index in range(UNIT_LOCK_AFTER):  # every one from another address: the per-address wait never bites
        state, outcome = _sign_in(state, f"10.0.{index // 250}.{index % 250}", False, 100.0 + index)
    assert outcome.status == 423 and outcome.code == "signin_locked" and outcome.lock
    assert _sign_in(state, "10.9.9.9", True, 500.0)[1].status == 423  # the right PIN too
    # Even a request that read the setting before the lock was written stays out.
    assert _sign_in(state, "10.9.9.9", True, 501.0, locked=False)[1].status == 423
    # A restarted unit reads the lock from its settings.
    restarted, outcome = _sign_in(AdminSessions(), "10.9.9.9", True, 600.0, locked=True)
    assert outcome.code == "signin_locked"
    # The owner ran `iplm admin reset-pin` (a new PIN, the setting cleared): counting starts afresh.
    for unlocked in (state, restarted):
        unlocked, outcome = _sign_in(unlocked, "10.9.9.9", True, 700.0, version=V2)
        assert outcome == Admitted("t1") and unlocked.unit_failures == 0 and unlocked.locked_pin_version is None


def test_a_right_pin_resets_the_unit_wide_count():
    state = AdminSessions()
    for index in range(UNIT_LOCK_AFTER - 1):
        state, _ = _sign_in(state, f"10.1.{index // 250}.{index % 250}", False, 100.0)
    state, _ = _sign_in(state, "10.9.9.9", True, 200.0)
    state, outcome = _sign_in(state, "10.9.9.8", False, 201.0)
    assert outcome.code == "wrong_pin"


def test_the_table_of_addresses_is_bounded():
    state = AdminSessions()
    for index in range(MAX_ADDRESSES + 50):
        state, _ = apply_session_event(
            state, SignInAsked(f"10.{index // 65536}.{index // 256 % 256}.{index % 256}", 100.0 + index)
        )
    assert len(state.failures) <= MAX_ADDRESSES + 1


def test_a_changed_pin_ends_every_other_session():
    state, _ = _sign_in(AdminSessions(), "10.0.0.5", True, 100.0, token="mine")
    state, _ = _sign_in(state, "10.0.0.6", True, 101.0, token="theirs")
    state, outcome = apply_session_event(state, PinChanged("mine", V2, 102.0))
    assert outcome == Admitted("mine")
    assert _present(state, "mine", 103.0, version=V2)[1] == Admitted("mine")
    assert _present(state, "theirs", 103.0, version=V2)[1].status == 401
    # A PIN changed behind the sessions' back (reset on the unit): none goes on.
    assert _present(state, "mine", 104.0, version="pin-v3")[1].status == 401


def test_unknown_tokens_and_signed_out_sessions_are_refused():
    state, _ = _sign_in(AdminSessions(), "10.0.0.5", True, 100.0)
    assert isinstance(_present(state, "forged", 101.0)[1], Refused)
    state, _ = apply_session_event(state, SignedOut("t1"))
    assert isinstance(_present(state, "t1", 102.0)[1], Refused)


def test_unknown_events_are_refused():
    with pytest.raises(TypeError):
        apply_session_event(AdminSessions(), object())
