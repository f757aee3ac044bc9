"""Apply one event to the peer table: a presence, a last will, a lost link, the passing of time."""

from __future__ import annotations

import dataclasses

from appliance.mesh.agent.mesh_agent_types import ClockTicked, LinkLost, PeerTableEvent, PresenceHeard, WillHeard
from appliance.mesh.agent.presence_types import GoneReason, PeerEntry, PeerState

PeerTable = dict[str, PeerEntry]


def _mark_gone(entry: PeerEntry, reason: GoneReason, at: float) -> PeerEntry:
    if entry.state == "gone":
        return entry
    return dataclasses.replace(entry, state="gone", reason=reason, since=at)


def _hear_presence(table: PeerTable, event: PresenceHeard) -> PeerTable:
    old = table.get(event.sender)
    leaving = event.presence.state == "gone"  # a unit that stops cleanly says so
    state: PeerState = "gone" if leaving else "online"
    changed = old is None or old.state != state
    entry = PeerEntry(
        state=state,
        presence=event.presence,
        last_seen=event.at,
        via=event.via,
        since=event.at if changed or old is None else old.since,
        reason="left" if leaving else None,
    )
    return {**table, event.sender: entry}


def _hear_will(table: PeerTable, event: WillHeard) -> PeerTable:
    entry = table.get(event.sender)
    # Only the will of the connection behind the latest presence counts (see mesh_agent_types).
    if entry is None or entry.presence.will_id != event.presence.will_id:
        return table
    return {**table, event.sender: _mark_gone(entry, "will", event.at)}


def _lose_link(table: PeerTable, event: LinkLost) -> PeerTable:
    return {
        node: (_mark_gone(entry, "link", event.at) if entry.via == event.via else entry)
        for node, entry in table.items()
    }


def _tick(table: PeerTable, event: ClockTicked) -> PeerTable:
    return {
        node: (_mark_gone(entry, "silent", event.at) if event.at - entry.last_seen > event.gone_after_s else entry)
        for node, entry in table.items()
    }


def update_peer_table(table: PeerTable, event: PeerTableEvent) -> PeerTable:
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
