"""Whether a peer can take chats of a model now: the one test both placement and splitting use."""

from __future__ import annotations

from appliance.mesh.agent.presence_types import PeerEntry
from appliance.mesh.work.work_types import MAX_LOAD_AGE_S


def can_take_chats(entry: PeerEntry, model: str, now: float) -> bool:
    """Online, serving `model` with a ready worker, by load figures younger than MAX_LOAD_AGE_S (a unit still
    installing the model serves none)."""
    load = entry.presence.load
    return (
        entry.state == "online"
        and now - entry.last_seen <= MAX_LOAD_AGE_S
        and load.model == model
        and load.workers_ready > 0
    )
