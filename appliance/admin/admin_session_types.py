"""Data shapes of admin sign-in: open sessions, wrong PINs by address and unit-wide, the events and outcomes.

apply_session_event(state, event) -> (state, outcome) is pure; the admin routes check the PIN (scrypt,
against the stored hash) between SignInAsked and PinChecked, and act on the outcomes.

Against guessing (every phone in radio range can try): wrong PINs count per client address, not per
cookie (a client chooses its cookie); after a few, each address waits twice as long as before for its next
try; and after UNIT_LOCK_AFTER wrong PINs unit-wide, sign-in stays locked (also across restarts) until the
owner runs `iplm admin reset-pin` on the unit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_SECONDS = 12 * 3600  # at most, however busy the admin is
SESSION_IDLE_SECONDS = 30 * 60  # an admin page left open on a shared phone does not stay open
FREE_TRIES = 3  # wrong PINs an address may send before it has to wait
MAX_BACKOFF_S = 3600.0  # 1, 2, 4, ... seconds between tries, up to an hour
FORGET_AFTER_S = 24 * 3600.0  # an address that tried nothing for this long starts afresh
UNIT_LOCK_AFTER = 100  # wrong PINs unit-wide (since the last right one) that lock sign-in
MAX_ADDRESSES = 1024  # wrong-PIN records kept; the oldest go first
LOCK_SETTING = "admin_signin_locked"  # settings table: true while sign-in is locked


@dataclass(frozen=True)
class AddressFailures:
    count: int
    last_at: float  # monotonic s


@dataclass(frozen=True)
class Session:
    expires_at: float  # monotonic s; absolute end
    last_seen: float  # monotonic s; idle end is last_seen + SESSION_IDLE_SECONDS
    pin_version: str  # the stored PIN it was opened with: a changed PIN ends it


@dataclass(frozen=True)
class AdminSessions:
    """Dicts here are values: transitions copy, never change them."""

    sessions: dict[str, Session] = field(default_factory=dict)  # session token -> session
    failures: dict[str, AddressFailures] = field(default_factory=dict)  # client address -> its wrong PINs
    unit_failures: int = 0  # wrong PINs since the last right one, every address together
    locked_pin_version: str | None = None  # locked while the PIN is this one: the owner's reset sets a new PIN


# Events.
@dataclass(frozen=True)
class SignInAsked:
    """A sign-in arrived; asked before the PIN is checked, so that a waiting client costs no hashing.

    pin_version: the stored PIN now. locked: the persisted lock (LOCK_SETTING), for a unit that restarted
    while locked; `iplm admin reset-pin` clears it and sets a new PIN.
    """

    address: str
    at: float
    pin_version: str = ""
    locked: bool = False


@dataclass(frozen=True)
class PinChecked:
    address: str
    correct: bool
    token: str  # the new session's token, used if the PIN was right (chosen at the edge: randomness)
    pin_version: str
    at: float


@dataclass(frozen=True)
class SessionPresented:
    token: str
    pin_version: str  # the stored PIN now
    at: float


@dataclass(frozen=True)
class PinChanged:
    """The admin changed the PIN in session `token`: that session goes on, every other one ends."""

    token: str
    pin_version: str
    at: float


@dataclass(frozen=True)
class SignedOut:
    token: str


SessionEvent = SignInAsked | PinChecked | SessionPresented | PinChanged | SignedOut


# Outcomes.
@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str
    retry_after_s: float | None = None
    lock: bool = False  # sign-in just got locked: the edge persists LOCK_SETTING


@dataclass(frozen=True)
class Admitted:
    """The request may go on: the PIN may be checked, or the session is open (token: the new one, if any)."""

    token: str = ""


SessionOutcome = Refused | Admitted


@dataclass(frozen=True)
class SessionKeeper:
    """The running sign-in state (start_admin_sessions): apply(event) -> outcome, one event at a time."""

    apply: Callable[[SessionEvent], SessionOutcome]
