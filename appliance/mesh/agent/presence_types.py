"""Data shapes of what units say about themselves (presence) and what a unit knows of its peers (the peer table).

A presence arrives as JSON from another unit; parse_presence turns it into a Presence, once, at the edge,
bounding every field. Everything after that (the peer table, installs from peers, the admin page, the
status file) reads these typed shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PeerState = Literal["online", "gone"]
GoneReason = Literal["left", "will", "link", "silent"]


@dataclass(frozen=True)
class UnitLoad:
    """What the unit's engine pool is doing (its describe_status, reduced): what a scheduler needs to tell
    where a chat would finish soonest. None: not known (no chat measured yet, no worker ready, or the speed
    measured too long ago to count: parse_presence drops a speed older than MAX_SPEED_AGE_S)."""

    workers: int = 0
    workers_ready: int = 0
    busy: int = 0
    queued: int = 0
    model: str | None = None  # the model its workers serve
    start_in_s: float | None = None  # how long a chat sent there now would wait for a worker
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    speed_age_s: float | None = None  # how old the speeds were when the presence was sent
    # Chats its ready workers run at once (a worker may decode several together): what busy counts against.
    slots_ready: int = 0


# A speed measured this long before its presence was sent has aged out: the unit has not answered a chat
# since (idle, or its chats all cut short), and what it measured then may not hold now.
MAX_SPEED_AGE_S = 1800.0


@dataclass(frozen=True)
class PresenceModel:
    """A model a unit holds: all of it ("installed"), or some verified pieces ("partial")."""

    id: str
    state: Literal["installed", "partial"]
    engine: str = ""
    format: str = ""
    root: str | None = None
    size: int = 0
    pieces: dict | None = None  # a partial model's held pieces, as encode_piece_set wrote them


@dataclass(frozen=True)
class Presence:
    """One unit's presence (or its last will: state "gone", will_id set, little else)."""

    node: str
    state: PeerState = "online"
    name: str = ""
    engine: str = ""
    device: str = ""
    memory_free: int | None = None
    load: UnitLoad = UnitLoad()
    models: tuple[PresenceModel, ...] = ()
    address: str = ""
    broker: int | None = None
    portal: int | None = None
    will_id: str = ""
    pieces_omitted: bool = False  # too many pieces to seal: the models are listed without piece maps


@dataclass(frozen=True)
class PeerEntry:
    """What this unit knows of one peer. since: when `state` last changed (epoch s)."""

    state: PeerState
    presence: Presence
    last_seen: float
    via: str  # "host:port" of the broker it was heard on
    since: float
    reason: GoneReason | None = None
    rssi: int | None = None  # BLE signal, where BLE heard the unit (added by the agent's peers())
