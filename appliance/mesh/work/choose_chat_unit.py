"""Pick the unit where a whole chat would be complete soonest: this one, or a peer serving the same model."""

from __future__ import annotations

import random

from appliance.mesh.agent.presence_types import PeerEntry, UnitLoad
from appliance.mesh.work.work_types import (
    CANDIDATES_DRAWN,
    FORWARD_OVERHEAD_S,
    MAX_LOAD_AGE_S,
    ChatCost,
    ChatPlacement,
    UnitEstimate,
)


def _seconds(tokens: int, per_s: float | None) -> float | None:
    return tokens / per_s if per_s else None


def _estimate(node: str | None, load: UnitLoad, cost: ChatCost, fallback: UnitLoad, extra_s: float) -> UnitEstimate:
    # A unit that has not measured its speed yet is taken to be as fast as this one (the only figure there is).
    prefill = load.prefill_tokens_per_s or fallback.prefill_tokens_per_s
    decode = load.decode_tokens_per_s or fallback.decode_tokens_per_s
    return UnitEstimate(
        node=node,
        start_s=(load.start_in_s or 0.0) + extra_s,
        prefill_s=_seconds(cost.prompt_tokens, prefill),
        decode_s=_seconds(cost.reply_tokens, decode),
    )


def _can_take(entry: PeerEntry, model: str, now: float) -> bool:
    load = entry.presence.load
    return (
        entry.state == "online"
        and now - entry.last_seen <= MAX_LOAD_AGE_S
        and load.model == model
        and load.workers_ready > 0
        and load.start_in_s is not None
    )


def choose_chat_unit(
    local: UnitLoad, peers: dict[str, PeerEntry], cost: ChatCost, *, now: float, rng: random.Random
) -> ChatPlacement:
    """Where the chat `cost` describes runs: node None (here) unless a peer would finish it sooner by more
    than the forwarding overhead.

    Only online peers whose workers serve cost.model, ready, with load figures younger than
    MAX_LOAD_AGE_S, are weighed (a unit still installing the model serves none); of those, CANDIDATES_DRAWN
    drawn at random with `rng`. A peer's wait is its last presence's (at most a few heartbeats old): the
    peer itself declines a chat that its queue has outgrown since (accept_chat_job).
    """
    if local.model is not None and local.model != cost.model:
        return ChatPlacement(None, "this unit serves another model")
    here = (
        _estimate(None, local, cost, local, 0.0) if local.workers_ready > 0 and local.start_in_s is not None else None
    )
    able = sorted(node for node, entry in peers.items() if _can_take(entry, cost.model, now))
    drawn = rng.sample(able, min(CANDIDATES_DRAWN, len(able)))
    there = [_estimate(node, peers[node].presence.load, cost, local, FORWARD_OVERHEAD_S) for node in drawn]
    estimates = tuple(sorted([e for e in [here, *there] if e is not None], key=lambda e: (e.finish_s, e.node or "")))
    if not there:
        return ChatPlacement(None, "no peer serves this model now", estimates)
    if here is None:
        return ChatPlacement(estimates[0].node, "this unit has no ready worker", estimates)
    best = estimates[0]
    if best.node is None:
        return ChatPlacement(None, "this unit finishes soonest", estimates)
    return ChatPlacement(best.node, f"finishes {here.finish_s - best.finish_s:.1f} s sooner there", estimates)
