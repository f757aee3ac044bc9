"""The mesh agent: publish this unit's presence on its own broker, read every peer's presence on theirs.

(a) One connection to the unit's OWN broker: presence, retained, sealed, every `heartbeat_s` and on
    every (re)connect, with a sealed "gone" last will. (b) One connection to each discovered peer's
    broker (mDNS, manual peers, add_peer), subscribed to iplm/<mesh_id>/presence/+. (c) A peer table.
    The decisions are apply_agent_event's (pure); this module turns MQTT, mDNS, BLE and timer callbacks
    into its events and performs the effects.

Every connection is mutual TLS with the unit's own certificate, and takes only a broker whose certificate the
mesh's CA signed; the broker's CN (its node id) is the one unit that link speaks for.

No unit is special: every unit's presence lives on its own broker, so any unit can leave or crash
and the others keep seeing each other. A full mesh of N x (N-1) MQTT connections suits a LAN of tens
of units; hundreds run the same topics on a clustered broker instead (docs/architecture.md).

Clocks: nothing here compares a peer's clock with ours (offline units have no NTP and drift); each peer's
offset is measured from its presence and read by clock_offset(node).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets as random_secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.mesh.agent.agent_state_types import (
    OWN_LINK,
    AgentConfig,
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
from appliance.mesh.agent.apply_agent_event import apply_agent_event
from appliance.mesh.agent.mesh_agent_types import DEFAULT_TIMING, PRESENCE_VERSION, AgentTiming, BleSighting, MeshAgent
from appliance.mesh.agent.presence_types import PeerEntry
from appliance.mesh.identity.identity_types import UnitIdentity
from appliance.mesh.mesh_errors import MeshError, MeshMessageError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.advance_mesh_counter import advance_mesh_counter
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message
from appliance.write_file_atomically import write_file_atomically

_log = logging.getLogger("iplm.mesh")
_TICK_S = 0.25
_COUNTER_FILE = "mesh_counter"
# The counter's high-water mark is written this far ahead, so the file changes once per 10 minutes of
# messages, not once per heartbeat (SD cards wear), and a restart still counts above everything sent.
_COUNTER_RESERVE = 600_000
_OWN_CONNECT_WAIT_S = 5.0
_REFUSED_RETRY_S = (5, 30)  # a broker that refuses us (another mesh, old key) is retried slowly
_GOODBYE_WAIT_S = 1.0


@dataclass(eq=False)
class _Edge:
    """What performing the agent's effects needs: the clients, the counter, the callbacks. Not its state."""

    state: AgentState
    secrets: MeshSecrets
    identity: UnitIdentity
    timing: AgentTiming
    describe_unit: Callable[[], dict]
    advertise_address: str
    broker_port: int
    portal_port: int
    counter_path: Path
    on_change: Callable[[dict], None] | None
    on_work: Callable[[WorkKind, str, dict], None] | None
    own: mqtt.Client  # the connection to this unit's own broker
    clients: dict[str, mqtt.Client] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    publish_lock: threading.Lock = field(default_factory=threading.Lock)
    counter: dict = field(default_factory=dict)  # {"last", "reserved"}, under publish_lock
    last_unit: dict = field(default_factory=dict)
    goodbye: mqtt.MQTTMessageInfo | None = None


def _next_counter(edge: _Edge) -> int:
    # Caller holds edge.publish_lock.
    if not edge.counter:
        try:
            reserved = int(edge.counter_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            reserved = None
        edge.counter.update(last=reserved, reserved=reserved or 0)
    counter = advance_mesh_counter(edge.counter["last"], now=time.time())
    if counter >= edge.counter["reserved"]:
        edge.counter["reserved"] = counter + _COUNTER_RESERVE
        try:
            write_file_atomically(edge.counter_path, f"{edge.counter['reserved']}\n")
        except OSError as exc:  # a read-only data dir only weakens restarts with a clock gone back
            _log.warning("cannot keep the mesh counter in %s: %s", edge.counter_path, exc)
    edge.counter["last"] = counter
    return counter


def _seal(edge: _Edge, payload: dict, *, will: bool = False) -> bytes:
    return _seal_on(edge, edge.state.config.own_topic, payload, will=will)


def _seal_on(edge: _Edge, topic: str, payload: dict, *, will: bool = False) -> bytes:
    # Caller holds edge.publish_lock.
    return seal_mesh_message(
        edge.secrets, edge.state.config.node_id, topic, payload, now=time.time(), counter=_next_counter(edge), will=will
    )


def _strip_pieces(payload: dict) -> dict:
    # Too big to seal (a huge scattered piece map): say which models, not which pieces.
    models = [{k: v for k, v in model.items() if k != "pieces"} for model in payload.get("models", [])]
    return {**payload, "models": models, "pieces_omitted": True}


def _describe_presence(edge: _Edge, presence_state: str, will_id: str) -> dict:
    try:
        edge.last_unit = edge.describe_unit()
    except Exception:  # a store hiccup must not silence the heartbeat: say what we said last time
        _log.exception("describing this unit for its presence failed")
    return {
        **edge.last_unit,
        "v": PRESENCE_VERSION,
        "node": edge.state.config.node_id,
        "state": presence_state,
        "address": edge.advertise_address,
        "broker": edge.broker_port,
        "portal": edge.portal_port,
        "will_id": will_id,
    }


def _publish_presence(edge: _Edge, effect: PublishPresence) -> mqtt.MQTTMessageInfo | None:
    with edge.publish_lock:
        # Publishing while disconnected would queue an old counter behind the fresh presence that the
        # next connect sends, and the broker would keep the older one as the retained message.
        if not edge.own.is_connected():
            return None
        payload = _describe_presence(edge, effect.state, effect.will_id)
        try:
            raw = _seal(edge, payload)
        except MeshMessageError:
            raw = _seal(edge, _strip_pieces(payload))
        return edge.own.publish(edge.state.config.own_topic, raw, qos=1, retain=True)


def _arm_will(edge: _Edge, will_id: str) -> None:
    will = {"v": PRESENCE_VERSION, "node": edge.state.config.node_id, "state": "gone", "will_id": will_id}
    with edge.publish_lock:
        raw = _seal(edge, will, will=True)
    edge.own.will_set(edge.state.config.own_topic, raw, qos=1, retain=True)


def _pace_reconnects(client: mqtt.Client, min_delay_s: float, max_delay_s: float) -> None:
    # paho's annotations say int, but it computes the backoff in float seconds: 0.1 s is what a LAN needs.
    client.reconnect_delay_set(min_delay=min_delay_s, max_delay=max_delay_s)  # type: ignore[arg-type]


def _create_tls_context(identity: UnitIdentity) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(identity.ca_path))
    # A broker is known by its certificate's CN (a node id), not by a host name: mDNS and manual peers give
    # addresses. The chain must still lead to the mesh's CA; the CN is read after connecting.
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(identity.certificate_path), str(identity.key_path))
    return context


def _read_broker_node(client: mqtt.Client) -> str | None:
    sock = client.socket()
    certificate = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    # getpeercert(): {"subject": ((("commonName", "..."),), ...), ...}
    subject = (certificate or {}).get("subject", ())
    names = [pair for entry in subject for pair in entry if isinstance(pair, tuple) and len(pair) == 2]
    return next((str(value) for name, value in names if name == "commonName"), None)


def _new_client(client_id: str, identity: UnitIdentity, timing: AgentTiming) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set_context(_create_tls_context(identity))
    _pace_reconnects(client, 0.1, timing.reconnect_max_s)
    client.connect_timeout = timing.connect_timeout_s
    return client


def _open_link(edge: _Edge, effect: OpenLink) -> None:
    key = effect.link
    client = _new_client(f"iplm-{edge.state.config.node_id}-{random_secrets.token_hex(4)}", edge.identity, edge.timing)
    client.on_connect = lambda c, _u, _f, code, _p: _apply(
        edge, LinkConnected(key, code.is_failure, str(code), broker_node=_read_broker_node(c))
    )
    client.on_disconnect = lambda _c, _u, _f, _code, _p: _apply(edge, LinkDropped(key, time.monotonic()))
    client.on_message = lambda _c, _u, message: _apply(
        edge, MessageArrived(key, message.topic, bytes(message.payload), time.time())
    )
    with edge.lock:
        edge.clients[key] = client
    client.connect_async(effect.host, effect.port, keepalive=edge.timing.keepalive_s)
    client.loop_start()


def _close_link(edge: _Edge, key: str) -> None:
    with edge.lock:
        client = edge.clients.pop(key, None)
    if client is not None:
        client.disconnect()
        client.loop_stop()


def _subscribe_work(edge: _Edge, link: str) -> None:
    config = edge.state.config
    if link == OWN_LINK:
        edge.own.subscribe(f"iplm/{config.secrets.mesh_id}/jobs/+/{config.node_id}", qos=1)
        return
    with edge.lock:
        client = edge.clients.get(link)
    if client is not None:
        client.subscribe(f"iplm/{config.secrets.mesh_id}/results/+/{config.node_id}", qos=1)


def _send_work(edge: _Edge, kind: WorkKind, node: str, payload: dict) -> bool:
    """Seal and publish a job to `node` (on its broker, over our link to it) or a result to `node` (on our own
    broker, where its link reads it). False when that connection is not up: the caller decides what next."""
    config = edge.state.config
    if kind == "job":
        with edge.lock:
            keys = [
                key for key, link in edge.state.links.items() if link.broker_node == node and link.phase == "connected"
            ]
            client = edge.clients.get(keys[0]) if keys else None
    else:
        client = edge.own
    if client is None or not client.is_connected():
        return False
    topic = config.work_topic(kind, config.node_id, node)
    with edge.publish_lock:  # sealed and published in counter order
        raw = _seal_on(edge, topic, payload)
        info = client.publish(topic, raw, qos=1)
    return info.rc == mqtt.MQTT_ERR_SUCCESS


def _perform(edge: _Edge, effect: AgentEffect) -> None:
    if isinstance(effect, OpenLink):
        _open_link(edge, effect)
    elif isinstance(effect, CloseLink):
        _close_link(edge, effect.link)
    elif isinstance(effect, (SubscribePresence, PaceReconnects)):
        with edge.lock:
            client = edge.clients.get(effect.link)
        if client is None:
            return
        if isinstance(effect, SubscribePresence):
            client.subscribe(f"{edge.state.config.topic_prefix}/+", qos=1)
        elif effect.slow:
            _pace_reconnects(client, *_REFUSED_RETRY_S)
        else:
            _pace_reconnects(client, 0.1, edge.timing.reconnect_max_s)
    elif isinstance(effect, PublishPresence):
        info = _publish_presence(edge, effect)
        if effect.state == "gone":
            edge.goodbye = info
    elif isinstance(effect, ArmWill):
        _arm_will(edge, effect.will_id)
    elif isinstance(effect, NotifyPeers) and edge.on_change is not None:
        edge.on_change(_describe_peers(edge))
    elif isinstance(effect, LogWarning):
        _log.warning("%s", effect.message)
    elif isinstance(effect, SubscribeWork):
        _subscribe_work(edge, effect.link)
    elif isinstance(effect, DeliverWork) and edge.on_work is not None:
        try:
            edge.on_work(effect.kind, effect.sender, effect.payload)
        except Exception:  # the work service's trouble must not end a network thread of the agent
            _log.exception("handling a %s from %s failed", effect.kind, effect.sender)


def _apply(edge: _Edge, event: AgentEvent) -> None:
    """Run `event` through the agent, then perform the effects: outside the lock, since closing a link
    joins its network thread, which may itself be waiting to deliver an event."""
    try:
        with edge.lock:
            edge.state, effects = apply_agent_event(edge.state, event)
        for effect in effects:
            _perform(edge, effect)
    except Exception:  # nothing a peer sends, and no hiccup, may end a network thread of the agent
        _log.exception("the mesh agent failed to handle %s", type(event).__name__)


def _describe_peers(edge: _Edge) -> dict[str, PeerEntry]:
    with edge.lock:
        state = edge.state
    return {
        node: dataclasses.replace(entry, rssi=state.proximity[node]["rssi"]) if node in state.proximity else entry
        for node, entry in state.table.items()
    }


def _describe_links(edge: _Edge) -> dict:
    with edge.lock:
        links = edge.state.links
    return {key: {"state": link.phase, "via": link.via, "node": link.node} for key, link in links.items()}


def _start_ble_advertising(mesh_id: str, node_id: str, adapter: str) -> Callable[[], None]:
    """Advertise over BLE from an event loop of its own: dbus-fast is asyncio, the agent is threads."""
    import asyncio

    from appliance.mesh.discovery.advertise_ble import advertise_ble
    from appliance.mesh.discovery.encode_ble_advertisement import encode_ble_advertisement

    loop = asyncio.new_event_loop()
    # The loop keeps running while advertising: BlueZ reads the advertisement over D-Bus and may Release it.
    thread = threading.Thread(target=loop.run_forever, name="iplm-ble-advertise", daemon=True)
    thread.start()

    def close_loop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    try:
        # advertise_ble bounds its own waits (system bus, BlueZ's answer).
        stop_advertising = asyncio.run_coroutine_threadsafe(
            advertise_ble(encode_ble_advertisement(mesh_id, node_id), adapter=adapter), loop
        ).result()
    except BaseException:
        close_loop()
        raise

    def stop() -> None:
        try:
            asyncio.run_coroutine_threadsafe(stop_advertising(), loop).result()
        except Exception:
            _log.exception("stopping BLE advertising failed")
        finally:
            close_loop()

    return stop


def _start_own_connection(edge: _Edge, broker_host: str) -> None:
    own = edge.own
    connected = threading.Event()

    def on_connect(_client, _userdata, _flags, code, _properties) -> None:
        if not code.is_failure:
            connected.set()
        _apply(edge, OwnConnected(code.is_failure, time.monotonic(), str(code)))

    own.on_connect = on_connect
    own.on_disconnect = lambda *_: _apply(edge, OwnDropped(random_secrets.token_hex(8)))
    own.on_message = lambda _c, _u, message: _apply(
        edge, MessageArrived(OWN_LINK, message.topic, bytes(message.payload), time.time())
    )
    _arm_will(edge, edge.state.will_id)
    own.connect_async(broker_host, edge.broker_port, keepalive=edge.timing.keepalive_s)
    own.loop_start()
    if not connected.wait(_OWN_CONNECT_WAIT_S):
        _log.warning("this unit's broker at %s:%d does not answer yet; retrying", broker_host, edge.broker_port)


def _start_discovery(
    edge: _Edge, *, mdns: bool, ble_adapter: str | None
) -> tuple[object | None, list[Callable[[], None]]]:
    """(zeroconf or None, stoppers) of mDNS browsing and advertising and BLE scanning and advertising."""
    mesh_id, node_id = edge.secrets.mesh_id, edge.state.config.node_id
    zeroconf, stoppers = None, []
    if mdns:
        from zeroconf import Zeroconf

        from appliance.mesh.discovery.advertise_mdns import advertise_mdns
        from appliance.mesh.discovery.browse_mdns import browse_mdns

        zeroconf = Zeroconf(interfaces=[edge.advertise_address])
        stoppers.append(
            browse_mdns(
                zeroconf,
                mesh_id=mesh_id,
                on_add=lambda peer: _apply(edge, MdnsFound(peer, time.time())),
                on_remove=lambda peer: _apply(edge, MdnsLost(peer, time.time())),
            )
        )
        stoppers.append(
            advertise_mdns(
                zeroconf,
                node_id=node_id,
                mesh_id=mesh_id,
                address=edge.advertise_address,
                broker_port=edge.broker_port,
                portal_port=edge.portal_port,
            )
        )
    if ble_adapter is not None:
        from appliance.mesh.discovery.scan_ble_peers import scan_ble_peers

        def on_sighting(sighting: BleSighting) -> None:
            with edge.lock:
                heard_before = sighting.node_id in edge.state.proximity
            if not heard_before:  # the owner's way to see that BLE works, also for units not yet connected
                _log.info("heard unit %s over BLE (RSSI %s)", sighting.node_id, sighting.rssi)
            _apply(edge, BleSighted(sighting, time.time()))

        try:
            stoppers.append(
                scan_ble_peers(mesh_id=mesh_id, node_id=node_id, on_sighting=on_sighting, adapter=ble_adapter)
            )
        except MeshError as exc:
            _log.info("no BLE discovery: %s", exc.message)
        try:
            stoppers.append(_start_ble_advertising(mesh_id, node_id, ble_adapter))
        except MeshError as exc:
            _log.info("not advertising over BLE: %s", exc.message)
    return zeroconf, stoppers


def _stop(
    edge: _Edge, stop_ticking: threading.Event, ticker: threading.Thread, zeroconf, stoppers: list[Callable[[], None]]
) -> None:
    if stop_ticking.is_set():
        return
    stop_ticking.set()
    ticker.join(timeout=5)
    _apply(edge, AgentStopping())  # publishes "gone" (peers mark us "left") and closes the peers' links
    if edge.goodbye is not None:
        try:
            edge.goodbye.wait_for_publish(timeout=_GOODBYE_WAIT_S)
        except (RuntimeError, ValueError):
            pass
    for stopper in reversed(stoppers):  # unregistering sends the mDNS goodbye
        stopper()
    # A clean disconnect: the broker drops the will instead of publishing it.
    edge.own.disconnect()
    edge.own.loop_stop()
    if zeroconf is not None:
        zeroconf.close()


def start_mesh_agent(
    *,
    data_dir,
    node_id: str,
    secrets: MeshSecrets,
    identity: UnitIdentity,
    broker_host: str,
    broker_port: int,
    describe_unit: Callable[[], dict],
    advertise_address: str,
    portal_port: int,
    discovery: bool = True,
    manual_peers=(),
    ble_adapter: str | None = None,
    timing: AgentTiming = DEFAULT_TIMING,
    on_change: Callable[[dict], None] | None = None,
    on_work: Callable[[WorkKind, str, dict], None] | None = None,
) -> MeshAgent:
    """Start the agent (threads) and return once its presence is on its own broker (or after 5 s trying).

    The own broker is reached at broker_host:broker_port and must also listen on
    advertise_address:broker_port, which is what peers are told (mDNS) and connect to. identity: the unit's
    certificate and key for every broker connection (load_unit_identity). manual_peers:
    [(host, port)]. ble_adapter: the Bluetooth adapter (hci0) to scan and advertise on; None: no BLE.
    on_change(peers) is called (from an agent thread) when a peer appears or changes state. on_work(kind,
    sender, payload) gets each job for this unit and each result of its jobs, opened and checked (from an
    agent thread: hand it on, do not work in it).
    """
    config = AgentConfig(node_id=node_id, secrets=secrets, timing=timing)
    edge = _Edge(
        state=AgentState(config=config, will_id=random_secrets.token_hex(8)),
        secrets=secrets,
        identity=identity,
        timing=timing,
        describe_unit=describe_unit,
        advertise_address=advertise_address,
        broker_port=broker_port,
        portal_port=portal_port,
        counter_path=Path(data_dir) / _COUNTER_FILE,
        on_change=on_change,
        on_work=on_work,
        own=_new_client(f"iplm-{node_id}-own-{random_secrets.token_hex(4)}", identity, timing),
    )
    _start_own_connection(edge, broker_host)
    zeroconf, stoppers = _start_discovery(edge, mdns=discovery, ble_adapter=ble_adapter)
    for host, port in manual_peers:
        _apply(edge, PeerAdded(host, int(port)))
    stop_ticking = threading.Event()

    def tick() -> None:
        while not stop_ticking.wait(_TICK_S):
            _apply(edge, AgentTicked(time.time(), time.monotonic()))

    ticker = threading.Thread(target=tick, name="iplm-mesh-tick", daemon=True)
    ticker.start()
    return MeshAgent(
        node_id=node_id,
        mesh_id=secrets.mesh_id,
        peers=lambda: _describe_peers(edge),
        links=lambda: _describe_links(edge),
        drops=lambda: dict(edge.state.drops),
        clock_offset=lambda node: edge.state.clock_offsets.get(node),
        add_peer=lambda host, port: _apply(edge, PeerAdded(host, int(port))),
        stop=lambda: _stop(edge, stop_ticking, ticker, zeroconf, stoppers),
        send_work=lambda kind, node, payload: _send_work(edge, kind, node, payload),
    )
