"""Apply one event to the peer table: a presence, a last will, a lost link, the passing of time."""
from __future__ import annotations

from appliance.mesh.agent.mesh_agent_types import ClockTicked, LinkLost, PresenceHeard, WillHeard


def _mark_gone(entry: dict, reason: str, at: float) -> dict:
    if entry["state"] == "gone":
        return entry
    return {**entry, "state": "gone", "reason": reason, "since": at}


def _hear_presence(table: dict, event: PresenceHeard) -> dict:
    old = table.get(event.sender)
    leaving = event.payload.get("state") == "gone"  # a unit that stops cleanly says so
    state = "gone" if leaving else "online"
    changed = old is None or old["state"] != state
    entry = {
        "state": state,
        "presence": event.payload,
        "last_seen": event.at,
        "via": event.via,
        "since": event.at if changed else old["since"],
        "reason": "left" if leaving else None,
    }
    return {**table, event.sender: entry}


def _hear_will(table: dict, event: WillHeard) -> dict:
    entry = table.get(event.sender)
    # Only the will of the connection behind the latest presence counts (see mesh_agent_types).
    if entry is None or entry["presence"].get("will_id") != event.payload.get("will_id"):
        return table
    return {**table, event.sender: _mark_gone(entry, "will", event.at)}


def _lose_link(table: dict, event: LinkLost) -> dict:
    return {node: (_mark_gone(entry, "link", event.at) if entry["via"] == event.via else entry)
            for node, entry in table.items()}


def _tick(table: dict, event: ClockTicked) -> dict:
    return {node: (_mark_gone(entry, "silent", event.at)
                   if event.at - entry["last_seen"] > event.gone_after_s else entry)
            for node, entry in table.items()}


def update_peer_table(table: dict, event) -> dict:
    """The peer table after `event` (PresenceHeard, WillHeard, LinkLost or ClockTicked); `table` is not changed."""
    if isinstance(event, PresenceHeard):
        return _hear_presence(table, event)
    if isinstance(event, WillHeard):
        return _hear_will(table, event)
    if isinstance(event, LinkLost):
        return _lose_link(table, event)
    if isinstance(event, ClockTicked):
        return _tick(table, event)
    raise TypeError(f"not a peer table event: {event!r}")
