"""The mesh agent's transitions: one event in, the new state and the effects to perform out (pure).

Messages are opened and checked here (rate, MAC, topic, replay: open_mesh_message is pure too); anything
forged, replayed, of another mesh, speaking for another unit than the broker it came from, or over a link's
message budget is dropped and counted. No wall clock decides (see open_mesh_message); each sender's clock
offset is kept, so that what it dates (peer requests) is read on its own clock.
A peer is gone when its will arrives, when the link to its broker stays down for `link_grace_s`, when
it says it leaves, or when no fresh presence came for `gone_after_s` (update_peer_table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.mesh.agent.agent_state_types import (
    OWN_LINK,
    AgentEffect,
    AgentEvent,
    AgentState,
    AgentStopping,
    AgentTicked,
    ArmWill,
    BleSighted,
    CloseLink,
    DeliverWork,
    LinkConnected,
    LinkDropped,
    LinkState,
    LogWarning,
    MdnsFound,
    MdnsLost,
    MessageArrived,
    NotifyPeers,
    OpenLink,
    OwnConnected,
    OwnDropped,
    PaceReconnects,
    PeerAdded,
    PublishPresence,
    SubscribePresence,
    SubscribeWork,
    WorkKind,
)
from appliance.mesh.agent.mesh_agent_types import ClockTicked, LinkLost, PresenceHeard, WillHeard
from appliance.mesh.agent.parse_presence import parse_presence
from appliance.mesh.agent.update_peer_table import update_peer_table
from appliance.mesh.discovery.format_peer_address import format_peer_address
from appliance.mesh.discovery.update_ble_proximity import update_ble_proximity
from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.messages.open_mesh_message import open_mesh_message
from appliance.route_event import route_event

Step = tuple[AgentState, list[AgentEffect]]


def _with_link(state: AgentState, key: str, link: LinkState) -> AgentState:
    return dataclasses.replace(state, links={**state.links, key: link})


def _notify_if_changed(state: AgentState, effects: list[AgentEffect]) -> AgentState:
    summary = {node: (entry.state, entry.via) for node, entry in state.table.items()}
    if summary == state.summary:
        return state
    effects.append(NotifyPeers())
    return dataclasses.replace(state, summary=summary)


def _drop(state: AgentState, key: str, code: str, message: str, effects: list[AgentEffect]) -> AgentState:
    drops = {**state.drops, code: state.drops.get(code, 0) + 1}
    # A retained message seen again on reconnect is expected ("replay"): counted, never logged.
    if code == "replay" or (key, code) in state.warned:
        return dataclasses.replace(state, drops=drops)
    effects.append(LogWarning(f"dropped a mesh message from {key} ({code}): {message}"))
    return dataclasses.replace(state, drops=drops, warned=state.warned | {(key, code)})


def _ensure_link(
    state: AgentState, host: str, port: int, via: str, node: str | None, effects: list[AgentEffect]
) -> AgentState:
    key = format_peer_address(host, port)
    if state.stopping or key in state.links:
        return state
    effects.append(OpenLink(key, host, port))
    return _with_link(state, key, LinkState(host=host, port=port, via=via, node=node))  # type: ignore[arg-type]


def _close_link(state: AgentState, key: str, at: float, effects: list[AgentEffect]) -> AgentState:
    if key not in state.links:
        return state
    effects.append(CloseLink(key))
    links = {k: link for k, link in state.links.items() if k != key}
    table = update_peer_table(state.table, LinkLost(via=key, at=at))
    return _notify_if_changed(dataclasses.replace(state, links=links, table=table), effects)


def _refill(allowance: float, counted_at: float | None, at: float, per_s: float, burst: int) -> tuple[float, bool]:
    """A token bucket after one more message at `at`: (allowance left, whether the message fits). Refilled at
    per_s up to burst; the first message, or a clock that stepped back, finds it full (nothing is owed)."""
    elapsed = burst / per_s if counted_at is None or at < counted_at else at - counted_at
    allowance = min(float(burst), allowance + elapsed * per_s)
    return (allowance - 1.0, True) if allowance >= 1.0 else (allowance, False)


def _spend_allowance(state: AgentState, key: str, at: float) -> tuple[AgentState, bool]:
    """Take one message from the link's budget: (state, whether there was one). A token bucket (_refill)."""
    link = state.links.get(key)
    if link is None:
        return state, True  # a message racing its link's close: the checks below still hold
    timing = state.config.timing
    left, spent = _refill(link.allowance, link.counted_at, at, timing.messages_per_s, timing.message_burst)
    return _with_link(state, key, dataclasses.replace(link, allowance=left, counted_at=at)), spent


def _spend_work_allowance(state: AgentState, event: MessageArrived, sender: str) -> tuple[AgentState, bool]:
    # Jobs come in on this unit's own broker from any member: a budget per sender (named by the topic, which
    # the broker's ACL lets only that member write). Results come in on one peer's link: a budget per link.
    timing = state.config.timing
    per_s, burst = timing.work_messages_per_s, timing.work_message_burst
    if event.link == OWN_LINK:
        allowance, at = state.job_allowance.get(sender, (0.0, None))
        left, fits = _refill(allowance, at, event.at, per_s, burst)
        return dataclasses.replace(state, job_allowance={**state.job_allowance, sender: (left, event.at)}), fits
    link = state.links.get(event.link)
    if link is None:
        return state, True
    left, fits = _refill(link.work_allowance, link.work_counted_at, event.at, per_s, burst)
    return _with_link(state, event.link, dataclasses.replace(link, work_allowance=left, work_counted_at=event.at)), fits


def _receive_work(state: AgentState, event: MessageArrived, kind: WorkKind, sender: str) -> Step:
    """A job for this unit (on its own broker) or a result of one of its jobs (on the peer's broker)."""
    effects: list[AgentEffect] = []
    config = state.config
    link = state.links.get(event.link)
    expected_link = event.link == OWN_LINK if kind == "job" else link is not None
    if not expected_link:  # a job relayed by a peer's broker, a result on our own: not how work travels
        return _drop(state, event.link, "wrong_broker", f"a {kind} arrived on {event.link}", effects), effects
    state, allowed = _spend_work_allowance(state, event, sender)
    if not allowed:
        return _drop(state, event.link, "rate_limited", f"{sender} is over its {kind} budget", effects), effects
    memory = state.work_replay.get(kind, {})
    try:
        message, memory = open_mesh_message(config.secrets, event.topic, event.raw, memory)
    except MeshMessageError as exc:
        return _drop(state, event.link, exc.code, exc.message, effects), effects
    state = dataclasses.replace(state, work_replay={**state.work_replay, kind: memory})
    if message.sender != sender or sender == config.node_id:
        return _drop(state, event.link, "wrong_sender", f"{message.sender} sent on {event.topic}", effects), effects
    if kind == "result" and link is not None and link.broker_node != sender:
        reason = f"the broker of {link.broker_node} relayed {sender}'s result"
        return _drop(state, event.link, "wrong_broker", reason, effects), effects
    effects.append(DeliverWork(kind, sender, message.payload))
    return state, effects


def _parse_work_topic(state: AgentState, topic: str) -> tuple[WorkKind, str] | None:
    """(kind, sender) of iplm/<mesh>/jobs|results/<sender>/<this unit>; None for any other topic."""
    parts = topic.split("/")
    config = state.config
    if len(parts) != 5 or parts[:2] != ["iplm", config.secrets.mesh_id] or parts[4] != config.node_id:
        return None
    kinds: dict[str, WorkKind] = {"jobs": "job", "results": "result"}
    kind = kinds.get(parts[2])
    return (kind, parts[3]) if kind is not None and parts[3] else None


def _receive(state: AgentState, event: MessageArrived) -> Step:
    effects: list[AgentEffect] = []
    config = state.config
    work = _parse_work_topic(state, event.topic)
    if work is not None:
        return _receive_work(state, event, *work)
    if event.link == OWN_LINK:  # nothing else is subscribed there
        return _drop(state, event.link, "topic_mismatch", f"unexpected topic {event.topic}", effects), effects
    # Before any parsing or MAC: a flood costs a counter per message.
    state, allowed = _spend_allowance(state, event.link, event.at)
    if not allowed:
        return _drop(state, event.link, "rate_limited", "the link is over its message budget", effects), effects
    try:
        message, replay = open_mesh_message(config.secrets, event.topic, event.raw, state.replay)
    except MeshMessageError as exc:
        return _drop(state, event.link, exc.code, exc.message, effects), effects
    sender, payload = message.sender, message.payload
    if event.topic.rsplit("/", 1)[-1] != sender:  # a member may only speak for itself
        return _drop(state, event.link, "wrong_sender", f"{sender} published on {event.topic}", effects), effects
    link = state.links.get(event.link)
    if link is not None and link.broker_node is not None and sender != link.broker_node:
        # Every unit holds the mesh key and could seal in another's name; only a unit's own broker (its
        # certificate, checked by TLS) speaks for it.
        reason = f"the broker of {link.broker_node} relayed {sender}'s presence"
        return _drop(state, event.link, "wrong_broker", reason, effects), effects
    if sender == config.node_id:  # a manual peer that is this very unit
        if link is not None and link.phase != "self":
            state = _with_link(state, event.link, dataclasses.replace(link, phase="self"))
        return state, effects
    try:
        presence = parse_presence(payload, sender)
    except ValueError as exc:
        return _drop(dataclasses.replace(state, replay=replay), event.link, "malformed", str(exc), effects), effects
    if link is not None:
        state = _with_link(state, event.link, dataclasses.replace(link, node=sender))
    # The MAC covered the envelope, so its "will" flag is authentic.
    kind = WillHeard if message.will else PresenceHeard
    table = update_peer_table(state.table, kind(sender=sender, presence=presence, via=event.link, at=event.at))
    offsets = state.clock_offsets
    if not message.will:  # a will was sealed long before the broker sent it: its date says nothing of the clock
        offsets = {**offsets, sender: message.sent_at - int(event.at * 1000)}
    state = dataclasses.replace(state, replay=replay, table=table, clock_offsets=offsets)
    return _notify_if_changed(state, effects), effects


def _connected(state: AgentState, event: LinkConnected) -> Step:
    link = state.links.get(event.link)
    if link is None:
        return state, []
    if event.refused:
        effects: list[AgentEffect] = [PaceReconnects(event.link, slow=True)]
        if link.phase != "refused":
            effects.append(LogWarning(f"the broker at {event.link} refused us: {event.reason} (another mesh?)"))
        return _with_link(state, event.link, dataclasses.replace(link, phase="refused")), effects
    if event.broker_node == state.config.node_id:  # a manual peer that is this very unit: closed by the ticker
        return _with_link(state, event.link, dataclasses.replace(link, phase="self", broker_node=event.broker_node)), []
    link = dataclasses.replace(link, phase="connected", down_since=None, lost=False, broker_node=event.broker_node)
    effects = [PaceReconnects(event.link, slow=False), SubscribePresence(event.link), SubscribeWork(event.link)]
    return _with_link(state, event.link, link), effects


def _dropped(state: AgentState, event: LinkDropped) -> Step:
    link = state.links.get(event.link)
    if link is None or link.phase in ("refused", "self"):
        return state, []
    down_since = link.down_since if link.down_since is not None else event.at
    return _with_link(state, event.link, dataclasses.replace(link, phase="down", down_since=down_since)), []


def _mdns_found(state: AgentState, event: MdnsFound) -> Step:
    peer = event.peer
    if peer.node_id == state.config.node_id:
        return state, []
    effects: list[AgentEffect] = []
    key = format_peer_address(peer.host, peer.broker_port)
    old = state.mdns_links.get(peer.node_id)
    state = dataclasses.replace(state, mdns_links={**state.mdns_links, peer.node_id: key})
    if old is not None and old != key:  # the unit moved (new address or port)
        state = _close_link(state, old, event.at, effects)
    return _ensure_link(state, peer.host, peer.broker_port, "mdns", peer.node_id, effects), effects


def _mdns_lost(state: AgentState, event: MdnsLost) -> Step:
    key = state.mdns_links.get(event.peer.node_id)
    if key is None:
        return state, []
    effects: list[AgentEffect] = []
    state = dataclasses.replace(
        state, mdns_links={n: k for n, k in state.mdns_links.items() if n != event.peer.node_id}
    )
    link = state.links.get(key)
    if link is not None and link.via != "manual":
        state = _close_link(state, key, event.at, effects)
    return state, effects


def _ble(state: AgentState, event: BleSighted) -> Step:
    return dataclasses.replace(state, proximity=update_ble_proximity(state.proximity, event.sighting, now=event.at)), []


def _add_peer(state: AgentState, event: PeerAdded) -> Step:
    effects: list[AgentEffect] = []
    return _ensure_link(state, event.host, event.port, "manual", None, effects), effects


def _publish(state: AgentState, presence_state: str, mono: float, effects: list[AgentEffect]) -> AgentState:
    effects.append(PublishPresence(presence_state, state.will_id))  # type: ignore[arg-type]
    return dataclasses.replace(state, next_heartbeat=mono + state.config.timing.heartbeat_s)


def _own_connected(state: AgentState, event: OwnConnected) -> Step:
    if event.refused:
        return state, [LogWarning(f"this unit's own broker refused the mesh credentials: {event.reason}")]
    effects: list[AgentEffect] = [SubscribeWork(OWN_LINK)]
    return _publish(dataclasses.replace(state, own_connected=True), "online", event.at, effects), effects


def _own_dropped(state: AgentState, event: OwnDropped) -> Step:
    state = dataclasses.replace(state, own_connected=False)
    if state.stopping:
        return state, []
    # A fresh will id per connection: a will captured from an earlier connection no longer counts.
    return dataclasses.replace(state, will_id=event.new_will_id), [ArmWill(event.new_will_id)]


def _tick(state: AgentState, event: AgentTicked) -> Step:
    if state.stopping:
        return state, []
    effects: list[AgentEffect] = []
    if state.own_connected and event.mono >= state.next_heartbeat:
        state = _publish(state, "online", event.mono, effects)
    table, links = state.table, dict(state.links)
    for key, link in state.links.items():
        if (
            link.down_since is not None
            and not link.lost
            and event.mono - link.down_since >= state.config.timing.link_grace_s
        ):
            links[key] = dataclasses.replace(link, lost=True)
            table = update_peer_table(table, LinkLost(via=key, at=event.at))
        elif link.phase == "self" and not link.closed:
            # Closed from the ticker, never from the link's own network thread (it cannot stop itself).
            links[key] = dataclasses.replace(link, closed=True)
            effects.append(CloseLink(key))
    table = update_peer_table(table, ClockTicked(at=event.at, gone_after_s=state.config.timing.gone_after_s))
    return _notify_if_changed(dataclasses.replace(state, table=table, links=links), effects), effects


def _stop(state: AgentState, event: AgentStopping) -> Step:
    if state.stopping:
        return state, []
    # Say goodbye on the own broker first (retained: peers mark us "left"), then close the peers' links.
    effects: list[AgentEffect] = [PublishPresence("gone", state.will_id)]
    effects += [CloseLink(key) for key, link in state.links.items() if not link.closed]
    return dataclasses.replace(state, stopping=True, links={}), effects


_TRANSITIONS: dict[type, Callable[[AgentState, Any], Step]] = {
    MessageArrived: _receive,
    LinkConnected: _connected,
    LinkDropped: _dropped,
    MdnsFound: _mdns_found,
    MdnsLost: _mdns_lost,
    BleSighted: _ble,
    PeerAdded: _add_peer,
    OwnConnected: _own_connected,
    OwnDropped: _own_dropped,
    AgentTicked: _tick,
    AgentStopping: _stop,
}


def apply_agent_event(state: AgentState, event: AgentEvent) -> Step:
    """The agent after `event`, and the effects the edge must perform, in order; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "mesh agent")
