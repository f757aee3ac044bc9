"""Data shapes of spreading work: what a placement weighs, and what it decided."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.engine.engine_types import CancelSignal, ChatRequest, ChatStream

# Where nothing is measured yet, a reply is this long (tokens): enough to rank units by decode speed.
TYPICAL_REPLY_TOKENS = 200
# What sending a chat to a peer and its first token back costs beyond the peer's own wait (MQTT over a
# LAN or the Wi-Fi mesh, sealing, the peer's decision): a peer must beat the unit by more than this.
FORWARD_OVERHEAD_S = 0.5
# A peer's load figures are as old as its last presence; older than this, they no longer count.
MAX_LOAD_AGE_S = 10.0
# Peers drawn at random and compared with the unit itself ("two random choices"): units that pick at the
# same moment rarely pick the same peer, so no idle unit is buried under everyone's chats.
CANDIDATES_DRAWN = 2
# A worker that decodes k chats together gives each 1 / (1 + (k - 1) * SHARED_DECODE_COST) of its speed
# alone: llama.cpp on one core makes 1.37x the tokens with 2 sequences and 1.47x with 4 (README, "Batched
# decoding"), which is 0.46 and 0.57 here. A GPU gains more; this errs toward the idle unit.
SHARED_DECODE_COST = 0.5


@dataclass(frozen=True)
class ChatCost:
    """What a chat asks of a unit: its prompt and how long a reply it may get."""

    model: str
    prompt_tokens: int
    reply_tokens: int = TYPICAL_REPLY_TOKENS


@dataclass(frozen=True)
class UnitEstimate:
    """When a chat sent to one unit now would be complete, and from what."""

    node: str | None  # None: this unit
    start_s: float  # wait for a worker (plus the forwarding overhead for a peer)
    prefill_s: float | None  # None: speed not measured
    decode_s: float | None

    @property
    def finish_s(self) -> float:
        return self.start_s + (self.prefill_s or 0.0) + (self.decode_s or 0.0)


@dataclass(frozen=True)
class ChatPlacement:
    """Where a whole chat runs: node None is this unit. estimates: every unit weighed, best first."""

    node: str | None
    reason: str
    estimates: tuple[UnitEstimate, ...] = ()


@dataclass(frozen=True)
class ChatWork:
    """The running work service (start_chat_work).

    handle(kind, sender, payload): the mesh agent's on_work (a job for this unit, a result of one of its own).
    stream_chat(request, cancel): run a chat where it finishes soonest, as Engine.stream_chat does.
    stop(): cancel the jobs run here for peers.
    count_workers(): the ready sequences (chats its workers decode at once) of this unit and of the peers
    that can take its chats now (how many pieces of one prompt may run at once).
    """

    handle: Callable[[str, str, dict], None]
    stream_chat: Callable[[ChatRequest, CancelSignal], ChatStream]
    stop: Callable[[], None]
    count_workers: Callable[[], int]
