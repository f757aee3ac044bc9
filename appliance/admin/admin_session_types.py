"""Data shapes of admin sign-in: the open sessions, the recent wrong PINs, the events and their outcomes.

apply_session_event(state, event) -> (state, outcomes) is pure; the admin routes check the PIN (scrypt,
against the stored hash) between SignInAsked and PinChecked, and act on the outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_SECONDS = 12 * 3600
# Five wrong PINs per phone in five minutes, then a pause: a 6-digit PIN cannot be walked through.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0


@dataclass(frozen=True)
class AdminSessions:
    """Dicts here are values: transitions copy, never change them. Times are monotonic seconds."""

    sessions: dict[str, float] = field(default_factory=dict)  # session token -> when it expires
    failures: dict[str, tuple[float, ...]] = field(default_factory=dict)  # client -> times of recent wrong PINs


# Events.
@dataclass(frozen=True)
class SignInAsked:
    """A sign-in arrived; asked before the PIN is checked, so that a locked-out client costs no hashing."""

    client: str
    at: float


@dataclass(frozen=True)
class PinChecked:
    client: str
    correct: bool
    token: str  # the new session's token, used if the PIN was right (chosen at the edge: randomness)
    at: float


@dataclass(frozen=True)
class SessionPresented:
    token: str
    at: float


@dataclass(frozen=True)
class SignedOut:
    token: str


SessionEvent = SignInAsked | PinChecked | SessionPresented | SignedOut


# Outcomes.
@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Admitted:
    """The request may go on: the PIN may be checked, or the session is open (token: the new one, if any)."""

    token: str = ""


SessionOutcome = Refused | Admitted


@dataclass(frozen=True)
class SessionKeeper:
    """The running sign-in state (start_admin_sessions): apply(event) -> outcome, one event at a time."""

    apply: Callable[[SessionEvent], SessionOutcome]
