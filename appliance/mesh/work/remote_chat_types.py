"""Data shapes of a chat this unit sent to a peer: its state, what happens to it, what the edge must do.

apply_remote_chat_event(chat, event) -> (chat, effects) is pure; the edge (the portal's chat stream) feeds
it the peer's result messages, the peer table's verdicts and a clock, and performs the effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from appliance.engine.engine_types import ChatEvent

RemotePhase = Literal["asked", "accepted", "streaming", "finished", "failed"]
# The peer answers a job at once (accepted or declined), before its engine's queue: silence this long
# means the job or its answer got lost, and the chat is run elsewhere.
ACCEPT_TIMEOUT_S = 3.0
# Whatever the peer table says, a peer that sent nothing for this long (no start, no delta, no keepalive:
# the peer sends one every KEEPALIVE_S while the chat waits in its queue) is given up.
SILENCE_TIMEOUT_S = 20.0
KEEPALIVE_S = 5.0
# What one result message may carry: far more than a batch of deltas (sent every few hundred ms) holds.
MAX_RESULT_TEXT = 16384
# Characters a token may stand for, at most, when a reply's max_tokens bounds what a peer may send back.
MAX_CHARS_PER_TOKEN = 32


@dataclass(frozen=True)
class RemoteChat:
    job: str
    node: str  # the peer running it
    phase: RemotePhase
    heard_at: float  # monotonic s: when the peer last spoke (or the job was sent)
    next_seq: int = 0  # the next delta or done the peer must send
    text: str = ""  # the reply so far, as delivered to the client
    started: bool = False  # the client has had its "start" event
    max_text: int = 1 << 20  # characters the whole reply may hold (from max_tokens): a broken peer cannot flood


# Events.
@dataclass(frozen=True)
class ResultArrived:
    """A result message from the chat's peer (already opened and checked by the mesh agent)."""

    payload: dict
    at: float


@dataclass(frozen=True)
class PeerLost:
    """The peer table says the peer is gone (its will, its link down, silence)."""

    at: float


@dataclass(frozen=True)
class RemoteTicked:
    at: float


@dataclass(frozen=True)
class ClientLeft:
    at: float


RemoteEvent = ResultArrived | PeerLost | RemoteTicked | ClientLeft


# Effects.
@dataclass(frozen=True)
class Deliver:
    """Pass this event on to the client."""

    event: ChatEvent


@dataclass(frozen=True)
class CancelOnPeer:
    job: str
    node: str


@dataclass(frozen=True)
class RunElsewhere:
    """Give up on the peer: this unit goes on with the chat, continuing `reply_prefix` (the text the client
    has already), and sends no second "start" when `started`."""

    reply_prefix: str
    started: bool
    reason: str


RemoteEffect = Deliver | CancelOnPeer | RunElsewhere
