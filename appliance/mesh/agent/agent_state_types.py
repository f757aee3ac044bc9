"""Data shapes of the running mesh agent: its state, the events it reacts to, the effects it asks for.

apply_agent_event(state, event) -> (state, effects) is pure; start_mesh_agent's edge turns MQTT, mDNS,
BLE and timer callbacks into events and performs the effects (open and close broker links, publish
this unit's presence, arm its last will, tell listeners, log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from appliance.mesh.agent.mesh_agent_types import AgentTiming, BleSighting, MdnsPeer
from appliance.mesh.agent.presence_types import PeerEntry, PeerState
from appliance.mesh.mesh_types import MeshSecrets

LinkPhase = Literal["connecting", "connected", "refused", "down", "self"]
WorkKind = Literal["job", "result"]
# MessageArrived.link of what comes in on this unit's own broker connection (jobs for it); peers' links are
# keyed "host:port", so nothing clashes.
OWN_LINK = "own"


@dataclass(frozen=True)
class AgentConfig:
    node_id: str
    secrets: MeshSecrets
    timing: AgentTiming

    @property
    def topic_prefix(self) -> str:
        return f"iplm/{self.secrets.mesh_id}/presence"

    @property
    def own_topic(self) -> str:
        return f"{self.topic_prefix}/{self.node_id}"

    def work_topic(self, kind: WorkKind, sender: str, receiver: str) -> str:
        """Jobs travel on the receiver's broker (iplm/<mesh>/jobs/<from>/<to>), results on the sender's
        (iplm/<mesh>/results/<from>/<to>): each broker's ACL lets a unit write only as <from>."""
        return f"iplm/{self.secrets.mesh_id}/{kind}s/{sender}/{receiver}"


@dataclass(frozen=True)
class LinkState:
    """A connection to one peer's broker ("host:port" keys it)."""

    host: str
    port: int
    via: Literal["mdns", "manual"]
    phase: LinkPhase = "connecting"
    node: str | None = None  # the unit heard on it
    broker_node: str | None = None  # the broker's certificate's CN, verified by TLS: the only unit it speaks for
    allowance: float = 0.0  # messages it may still deliver now (a token bucket, refilled with time)
    counted_at: float | None = None  # epoch s of the last refill
    work_allowance: float = 0.0  # the same for results of this unit's jobs on that peer
    work_counted_at: float | None = None
    down_since: float | None = None  # monotonic s
    lost: bool = False  # down past the grace period: its peers were marked gone
    closed: bool = False  # a link to this very unit, whose client was closed


@dataclass(frozen=True)
class AgentState:
    """The agent at one moment. Dicts here are values: transitions copy, never change them."""

    config: AgentConfig
    will_id: str  # the current connection's, see mesh_agent_types
    table: dict[str, PeerEntry] = field(default_factory=dict)
    replay: dict = field(default_factory=dict)  # open_mesh_message's memory of counters
    # Work arrives on other connections than presence (jobs on this unit's broker, results on the peer's),
    # so its order against presence is not kept: each kind has its own memory of counters.
    work_replay: dict[str, dict] = field(default_factory=dict)  # "job" | "result" -> {sender: counter}
    job_allowance: dict[str, tuple[float, float]] = field(default_factory=dict)  # sender -> (allowance, at)
    proximity: dict = field(default_factory=dict)  # update_ble_proximity's
    links: dict[str, LinkState] = field(default_factory=dict)
    mdns_links: dict[str, str] = field(default_factory=dict)  # node id -> link key, for links mDNS found
    drops: dict[str, int] = field(default_factory=dict)  # dropped messages by reason
    clock_offsets: dict[str, int] = field(default_factory=dict)  # node -> its clock minus ours, ms (presence)
    warned: frozenset[tuple[str, str]] = frozenset()  # (link, reason) already logged
    own_connected: bool = False
    next_heartbeat: float = 0.0  # monotonic s
    summary: dict[str, tuple[PeerState, str]] = field(default_factory=dict)  # node -> (state, via), last told
    stopping: bool = False


# Events.
@dataclass(frozen=True)
class MessageArrived:
    link: str
    topic: str
    raw: bytes
    at: float  # epoch s


@dataclass(frozen=True)
class LinkConnected:
    link: str
    refused: bool
    reason: str = ""
    broker_node: str | None = None  # the CN of the certificate the broker showed (TLS verified it)


@dataclass(frozen=True)
class LinkDropped:
    link: str
    at: float  # monotonic s


@dataclass(frozen=True)
class MdnsFound:
    peer: MdnsPeer
    at: float


@dataclass(frozen=True)
class MdnsLost:
    peer: MdnsPeer
    at: float


@dataclass(frozen=True)
class BleSighted:
    sighting: BleSighting
    at: float


@dataclass(frozen=True)
class PeerAdded:
    host: str
    port: int


@dataclass(frozen=True)
class OwnConnected:
    refused: bool
    at: float  # monotonic s
    reason: str = ""


@dataclass(frozen=True)
class OwnDropped:
    new_will_id: str  # a fresh random id for the next connection (chosen at the edge)


@dataclass(frozen=True)
class AgentTicked:
    at: float  # epoch s
    mono: float  # monotonic s


@dataclass(frozen=True)
class AgentStopping:
    pass


AgentEvent = (
    MessageArrived
    | LinkConnected
    | LinkDropped
    | MdnsFound
    | MdnsLost
    | BleSighted
    | PeerAdded
    | OwnConnected
    | OwnDropped
    | AgentTicked
    | AgentStopping
)


# Effects.
@dataclass(frozen=True)
class OpenLink:
    link: str
    host: str
    port: int


@dataclass(frozen=True)
class CloseLink:
    link: str


@dataclass(frozen=True)
class SubscribePresence:
    link: str


@dataclass(frozen=True)
class PaceReconnects:
    """Retry a peer's broker slowly (it refused us: another mesh, an old key) or quickly again."""

    link: str
    slow: bool


@dataclass(frozen=True)
class PublishPresence:
    state: Literal["online", "gone"]
    will_id: str


@dataclass(frozen=True)
class ArmWill:
    will_id: str


@dataclass(frozen=True)
class NotifyPeers:
    """A peer appeared or changed state: tell the listener (the status file, the admin page)."""


@dataclass(frozen=True)
class LogWarning:
    message: str


@dataclass(frozen=True)
class SubscribeWork:
    """Take work addressed to this unit on that connection: jobs on the own broker (OWN_LINK), results on a
    peer's link."""

    link: str


@dataclass(frozen=True)
class DeliverWork:
    """A job or a result for this unit, opened and checked: hand it to the work service."""

    kind: WorkKind
    sender: str
    payload: dict


AgentEffect = (
    OpenLink
    | CloseLink
    | SubscribePresence
    | PaceReconnects
    | PublishPresence
    | ArmWill
    | NotifyPeers
    | LogWarning
    | SubscribeWork
    | DeliverWork
)
