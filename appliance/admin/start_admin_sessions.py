"""The unit's admin sign-in state, in memory: sessions end when `iplm serve` stops."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from appliance.admin.admin_session_types import AdminSessions, SessionEvent, SessionKeeper, SessionOutcome
from appliance.admin.apply_session_event import apply_session_event


@dataclass(eq=False)
class _Edge:
    state: AdminSessions = field(default_factory=AdminSessions)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _apply(edge: _Edge, event: SessionEvent) -> SessionOutcome:
    with edge.lock:
        edge.state, outcome = apply_session_event(edge.state, event)
    return outcome


def start_admin_sessions() -> SessionKeeper:
    """A SessionKeeper with no session open: each event goes through apply_session_event under one lock."""
    edge = _Edge()
    return SessionKeeper(apply=lambda event: _apply(edge, event))
