"""Pick the unit where a whole chat would be complete soonest: this one, or a peer serving the same model."""

from __future__ import annotations

import math
import random

from appliance.mesh.agent.presence_types import PeerEntry, UnitLoad
from appliance.mesh.work.can_take_chats import can_take_chats
from appliance.mesh.work.count_ready_slots import count_ready_slots
from appliance.mesh.work.estimate_unit_start import estimate_unit_start
from appliance.mesh.work.work_types import (
    CANDIDATES_DRAWN,
    FORWARD_OVERHEAD_S,
    SHARED_DECODE_COST,
    ChatCost,
    ChatPlacement,
    UnitEstimate,
)


def _seconds(tokens: int, per_s: float | None) -> float | None:
    return tokens / per_s if per_s else None


def _count_sharing(load: UnitLoad, extra: int) -> int:
    """How many chats the worker that takes this one decodes together, this one counted (1: alone)."""
    if load.workers_ready <= 0:
        return 1
    per_worker = max(1, count_ready_slots(load) // load.workers_ready)
    return max(1, min(per_worker, math.ceil((load.busy + max(0, extra) + 1) / load.workers_ready)))


def _estimate(
    node: str | None, load: UnitLoad, cost: ChatCost, fallback: UnitLoad, extra: int, overhead_s: float
) -> UnitEstimate | None:
    # A unit that has not measured its speed yet is taken to be as fast as this one (the only figure there is).
    prefill = _seconds(cost.prompt_tokens, load.prefill_tokens_per_s or fallback.prefill_tokens_per_s)
    decode = _seconds(cost.reply_tokens, load.decode_tokens_per_s or fallback.decode_tokens_per_s)
    if decode is not None:
        # A free sequence beside running chats starts at once but decodes slower than an idle worker.
        decode *= 1 + (_count_sharing(load, extra) - 1) * SHARED_DECODE_COST
    chat_s = None if prefill is None or decode is None else prefill + decode
    start = estimate_unit_start(load, chat_s, extra)
    if start is None:
        return None
    return UnitEstimate(node=node, start_s=start + overhead_s, prefill_s=prefill, decode_s=decode)


def choose_chat_unit(
    local: UnitLoad,
    peers: dict[str, PeerEntry],
    cost: ChatCost,
    *,
    now: float,
    rng: random.Random,
    sent: dict[str, int] | None = None,
) -> ChatPlacement:
    """Where the chat `cost` describes runs: node None (here) unless a peer would finish it sooner by more
    than the forwarding overhead.

    Only online peers whose workers serve cost.model, ready, with load figures younger than
    MAX_LOAD_AGE_S, are weighed (a unit still installing the model serves none); of those, CANDIDATES_DRAWN
    drawn at random with `rng`. Waits come from estimate_unit_start: a peer's from its last presence (at
    most a few heartbeats old) plus `sent[node]`, the chats this unit sent it since that presence; the peer
    itself declines a chat that its queue has outgrown since (accept_chat_job).
    """
    sent = sent or {}
    if local.model is not None and local.model != cost.model:
        return ChatPlacement(None, "this unit serves another model")
    here = _estimate(None, local, cost, local, 0, 0.0)
    able = sorted(node for node, entry in peers.items() if can_take_chats(entry, cost.model, now))
    drawn = rng.sample(able, min(CANDIDATES_DRAWN, len(able)))
    loads = {node: peers[node].presence.load for node in drawn}
    there = [
        estimate
        for node in drawn
        if (estimate := _estimate(node, loads[node], cost, local, sent.get(node, 0), FORWARD_OVERHEAD_S)) is not None
    ]
    estimates = tuple(sorted([e for e in [here, *there] if e is not None], key=lambda e: (e.finish_s, e.node or "")))
    if not there:
        return ChatPlacement(None, "no peer serves this model now", estimates)
    if here is None:
        return ChatPlacement(estimates[0].node, "this unit has no ready worker", estimates)
    best = estimates[0]
    if best.node is None:
        return ChatPlacement(None, "this unit finishes soonest", estimates)
    return ChatPlacement(best.node, f"finishes {here.finish_s - best.finish_s:.1f} s sooner there", estimates)
