"""Data shapes of the mesh agent: discovery results, peer table events, the running agent.

Topics. Every unit publishes its presence on ITS OWN broker, retained, sealed (seal_mesh_message):
    iplm/<mesh_id>/presence/<node_id>
and every other unit reads it by connecting to that broker as a client. A broker therefore only ever
carries its own unit's presence: a unit that dies takes its broker (and its retained presence) with it.

Presence payload (a dict; what describe_unit_presence builds plus what the agent adds):
    v, state ("online" | "gone"), node, name, engine, device, memory_free, load, models, address,
    broker, portal, will_id.
`will_id` is a random value chosen per connection to the own broker; the last will sealed for that
connection carries the same value. A receiver takes a will as "gone" only when its will_id is the one
in the latest presence it accepted, so an old will, captured and replayed by someone holding the broker
password (it crosses the mesh link in clear MQTT), cannot take a living unit off the mesh.

Peer table: {node_id: PeerEntry} (presence_types); peers() adds the BLE signal where BLE heard the unit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from appliance.mesh.agent.presence_types import PeerEntry, Presence

MDNS_SERVICE_TYPE = "_iplm._tcp.local."
# The iplm BLE service (a random UUID of our own; no SIG assignment needed for 128-bit UUIDs).
BLE_SERVICE_UUID = "8e64f2fc-ba7e-45d0-b775-b5eb333ec36e"
BLE_PAYLOAD_VERSION = 1  # first byte of our BLE service data (encode_ble_advertisement)
DEFAULT_BROKER_PORT = 1883
PRESENCE_VERSION = 1
MESH_KEY_FILE = "mesh_key"  # in the data dir, mode 0600: the key never goes into the SQLite database
MANUAL_PEERS_SETTING = "mesh.manual_peers"  # settings table: ["host:port", ...]
MESH_DIR = "mesh"  # in the data dir: mosquitto.conf, mosquitto.acl, status.json, tls/
MESH_STATUS_FILE = "status.json"  # the running agent's view, for `iplm mesh status`


@dataclass(frozen=True)
class AgentTiming:
    """How fast the agent notices things. Defaults meet "seen within 2 s, gone within 10 s" on a LAN."""

    heartbeat_s: float = 3.0  # presence is republished this often
    gone_after_s: float = 10.0  # no fresh presence for this long: gone ("silent")
    keepalive_s: int = 2  # MQTT keepalive on every connection: a dead link shows in ~2-3 x this
    link_grace_s: float = 1.0  # a peer's broker connection down this long: gone ("link")
    reconnect_max_s: float = 1.0  # retry a peer's broker at least this often
    connect_timeout_s: float = 2.0
    # Messages taken from one broker link: a peer sends a presence every heartbeat_s, so this is ample, and a
    # member that floods (a broken or hostile unit) costs the others a counter, not a MAC check per message.
    messages_per_s: float = 5.0
    message_burst: int = 20
    # Work (jobs to this unit, results of its jobs on peers) has a budget of its own: a reply streams in
    # batches of deltas a few times a second, and a member that floods jobs costs a counter per message.
    work_messages_per_s: float = 50.0
    work_message_burst: int = 100


DEFAULT_TIMING = AgentTiming()


@dataclass(frozen=True)
class MdnsPeer:
    """A unit found by mDNS/DNS-SD: where its broker and portal are."""

    node_id: str
    mesh_id: str
    host: str
    broker_port: int
    portal_port: int
    service_name: str


@dataclass(frozen=True)
class BleBeacon:
    """What our BLE service data says: the unit's node id and the first 4 bytes of its mesh id."""

    version: int
    mesh_tag: str  # 8 hex digits
    node_id: str


@dataclass(frozen=True)
class BleSighting:
    """One BLE advertisement of a unit of our mesh, as the scanner heard it."""

    node_id: str
    rssi: int  # dBm; higher is nearer
    ble_address: str
    seen_at: float  # epoch seconds


# Peer table events (update_peer_table applies them).
@dataclass(frozen=True)
class PresenceHeard:
    sender: str
    presence: Presence
    via: str
    at: float


@dataclass(frozen=True)
class WillHeard:
    sender: str
    presence: Presence
    via: str
    at: float


@dataclass(frozen=True)
class LinkLost:
    via: str
    at: float


@dataclass(frozen=True)
class ClockTicked:
    at: float
    gone_after_s: float


PeerTableEvent = PresenceHeard | WillHeard | LinkLost | ClockTicked


@dataclass(frozen=True)
class MeshAgent:
    """A running mesh agent (start_mesh_agent).

    peers(): the peer table, {node id: PeerEntry}. links(): {"host:port": {"state": "connecting" | "connected" |
    "refused" | "down" | "self", "via": "mdns" | "manual", "node": node id or None}}. drops(): how many
    received messages were dropped, by reason ("bad_mac", "replay", "wrong_sender", "rate_limited", ...).
    clock_offset(node): how far that peer's clock is ahead of this unit's, in ms, as its latest presence showed
    (None: not heard). add_peer(host, port): connect to one more broker. stop(): publish "gone", close everything.
    send_work(kind, node, payload): seal and send a "job" to that peer or a "result" to it; False when the
    connection it needs is down.
    """

    node_id: str
    mesh_id: str
    peers: Callable[[], dict[str, PeerEntry]]
    links: Callable[[], dict]
    drops: Callable[[], dict]
    clock_offset: Callable[[str], int | None]
    add_peer: Callable[[str, int], None]
    stop: Callable[[], None]
    send_work: Callable[[Literal["job", "result"], str, dict], bool] = lambda kind, node, payload: False


@dataclass(frozen=True)
class UnitMesh:
    """The mesh side of a running unit (start_unit_mesh): its broker (None when systemd runs it) and agent."""

    agent: MeshAgent
    broker: object | None  # mesh_types.Broker
    stop: Callable[[], None]
