"""The mesh agent: publish this unit's presence on its own broker, read every peer's presence on theirs.

(a) One connection to the unit's OWN broker: presence, retained, sealed, every `heartbeat_s` and on
    every (re)connect, with a sealed "gone" last will. (b) One connection to each discovered peer's
    broker (mDNS, BLE-less manual peers, add_peer) with the mesh's derived credentials, subscribed to
    iplm/<mesh_id>/presence/+; every message goes through open_mesh_message, and anything forged,
    replayed, stale or of another mesh is dropped and counted. (c) A peer table (update_peer_table):
    a peer is gone when its will arrives, when the connection to its broker stays down for
    `link_grace_s` (MQTT keepalive notices a dead link in ~2 x keepalive_s), when it says it leaves,
    or when no fresh presence came for `gone_after_s`.

No unit is special: every unit's presence lives on its own broker, so any unit can leave or crash
and the others keep seeing each other. A full mesh of N x (N-1) MQTT connections suits a LAN of tens
of units; hundreds run the same topics on a clustered broker instead (DESIGN.md).

Clocks: open_mesh_message refuses messages dated more than `max_skew_s` from the receiver's clock, so
the units' clocks must roughly agree (offline units have no NTP). In the test lab every namespace
shares the host's clock, so the lab does not exercise skew.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import secrets as random_secrets
import threading
import time
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.mesh.messages.advance_mesh_counter import advance_mesh_counter
from appliance.mesh.discovery.format_peer_address import format_peer_address
from appliance.mesh.agent.mesh_agent_types import (PRESENCE_VERSION, AgentTiming, BleSighting, ClockTicked, LinkLost,
                                             MdnsPeer, MeshAgent, PresenceHeard, WillHeard)
from appliance.mesh.mesh_errors import MeshError, MeshMessageError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.open_mesh_message import open_mesh_message
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message
from appliance.mesh.discovery.update_ble_proximity import update_ble_proximity
from appliance.mesh.agent.update_peer_table import update_peer_table

_log = logging.getLogger("iplm.mesh")
_TICK_S = 0.25
_COUNTER_FILE = "mesh_counter"
# The counter's high-water mark is written this far ahead, so the file changes once per 10 minutes of
# messages, not once per heartbeat (SD cards wear), and a restart still counts above everything sent.
_COUNTER_RESERVE = 600_000
_OWN_CONNECT_WAIT_S = 5.0
_REFUSED_RETRY_S = (5, 30)  # a broker that refuses us (another mesh, old key) is retried slowly


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, path)


def _open_counter(path: Path) -> Callable[[], int]:
    try:
        reserved = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        reserved = None
    state = {"last": reserved, "reserved": reserved or 0}
    lock = threading.Lock()

    def next_counter() -> int:
        with lock:
            counter = advance_mesh_counter(state["last"], now=time.time())
            if counter >= state["reserved"]:
                state["reserved"] = counter + _COUNTER_RESERVE
                try:
                    _write_atomic(path, f"{state['reserved']}\n")
                except OSError as exc:  # a read-only data dir only weakens restarts with a clock gone back
                    _log.warning("cannot keep the mesh counter in %s: %s", path, exc)
            state["last"] = counter
            return counter

    return next_counter


def _summarize(table: dict) -> dict:
    return {node: (entry["state"], entry["via"]) for node, entry in table.items()}


def _strip_pieces(payload: dict) -> dict:
    # Too big to seal (a huge scattered piece map): say which models, not which pieces.
    models = [{k: v for k, v in model.items() if k != "pieces"} for model in payload.get("models", [])]
    return {**payload, "models": models, "pieces_omitted": True}


def _new_client(client_id: str, secrets: MeshSecrets, timing: AgentTiming) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(secrets.broker_username, secrets.broker_password)
    client.reconnect_delay_set(min_delay=0.1, max_delay=timing.reconnect_max_s)
    client.connect_timeout = timing.connect_timeout_s
    return client


def _start_ble_advertising(mesh_id: str, node_id: str) -> Callable[[], None]:
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
            advertise_ble(encode_ble_advertisement(mesh_id, node_id)), loop).result()
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


def start_mesh_agent(*, data_dir, node_id: str, secrets: MeshSecrets, broker_host: str, broker_port: int,
                     describe_unit: Callable[[], dict], advertise_address: str, portal_port: int,
                     discovery: bool = True, manual_peers=(), ble: bool = False,
                     timing: AgentTiming = AgentTiming(),
                     on_change: Callable[[dict], None] | None = None) -> MeshAgent:
    """Start the agent (threads) and return once its presence is on its own broker (or after 5 s trying).

    The own broker is reached at broker_host:broker_port and must also listen on
    advertise_address:broker_port, which is what peers are told (mDNS) and connect to. manual_peers:
    [(host, port)]. on_change(peers) is called (from an agent thread) when a peer appears or changes state.
    """
    mesh_id = secrets.mesh_id
    prefix = f"iplm/{mesh_id}/presence"
    own_topic = f"{prefix}/{node_id}"
    next_counter = _open_counter(Path(data_dir) / _COUNTER_FILE)
    lock = threading.RLock()
    publish_lock = threading.Lock()
    state: dict = {"table": {}, "replay": {}, "proximity": {}, "will_id": random_secrets.token_hex(8),
                   "last_unit": {}, "stopping": False, "stopped": False, "next_heartbeat": 0.0, "summary": {}}
    links: dict[str, dict] = {}
    mdns_links: dict[str, str] = {}  # node id -> link key, for links found by mDNS
    drops: collections.Counter = collections.Counter()
    warned: set = set()
    stop_event = threading.Event()
    own_connected = threading.Event()

    def seal(payload: dict, *, will: bool = False) -> bytes:
        return seal_mesh_message(secrets, node_id, own_topic, payload, now=time.time(), counter=next_counter(),
                                 will=will)

    def describe_presence(presence_state: str) -> dict:
        try:
            unit = describe_unit()
            state["last_unit"] = unit
        except Exception:  # a store hiccup must not silence the heartbeat: say what we said last time
            _log.exception("describing this unit for its presence failed")
            unit = state["last_unit"]
        return {**unit, "v": PRESENCE_VERSION, "node": node_id, "state": presence_state, "address": advertise_address,
                "broker": broker_port, "portal": portal_port, "will_id": state["will_id"]}

    def publish_presence(presence_state: str = "online") -> mqtt.MQTTMessageInfo | None:
        try:
            return send_presence(presence_state)
        except Exception:  # raised inside a paho callback, it would end the connection's network thread
            _log.exception("publishing this unit's presence failed")
            return None

    def send_presence(presence_state: str) -> mqtt.MQTTMessageInfo | None:
        with publish_lock:
            # Publishing while disconnected would queue an old counter behind the fresh presence that
            # on_connect sends, and the broker would keep the older one as the retained message.
            if not own.is_connected():
                return None
            payload = describe_presence(presence_state)
            try:
                raw = seal(payload)
            except MeshMessageError:
                raw = seal(_strip_pieces(payload))
            state["next_heartbeat"] = time.monotonic() + timing.heartbeat_s
            return own.publish(own_topic, raw, qos=1, retain=True)

    def arm_will() -> None:
        will = {"v": PRESENCE_VERSION, "node": node_id, "state": "gone", "will_id": state["will_id"]}
        own.will_set(own_topic, seal(will, will=True), qos=1, retain=True)

    def notify() -> None:
        with lock:
            summary = _summarize(state["table"])
            if summary == state["summary"]:
                return
            state["summary"] = summary
        if on_change is not None:
            try:
                on_change(describe_peers())
            except Exception:
                _log.exception("the mesh agent's on_change callback failed")

    def apply(event) -> None:
        with lock:
            state["table"] = update_peer_table(state["table"], event)

    def count_drop(key: str, code: str, message: str) -> None:
        drops[code] += 1
        if code == "replay":  # a retained message seen again on reconnect: expected, not news
            return
        if (key, code) not in warned:
            warned.add((key, code))
            _log.warning("dropped a mesh message from %s (%s): %s", key, code, message)

    def handle_message(key: str, topic: str, raw: bytes) -> None:
        try:
            receive_message(key, topic, raw)
        except Exception:  # nothing a peer sends may end the link's network thread
            _log.exception("handling a mesh message from %s failed", key)

    def receive_message(key: str, topic: str, raw: bytes) -> None:
        now = time.time()
        with lock:
            try:
                sender, payload, replay = open_mesh_message(secrets, topic, raw, state["replay"], now=now,
                                                            max_skew_s=timing.max_skew_s)
            except MeshMessageError as exc:
                count_drop(key, exc.code, exc.message)
                return
            if topic.rsplit("/", 1)[-1] != sender:  # a member may only speak for itself
                count_drop(key, "wrong_sender", f"{sender} published on {topic}")
                return
            link = links.get(key)
            if sender == node_id:  # a manual peer that is this very unit
                if link is not None:
                    link["state"] = "self"
                return
            state["replay"] = replay
            if link is not None:
                link["node"] = sender
            # The MAC covered the envelope, so its "will" flag is authentic.
            is_will = json.loads(raw)["will"]
            event = (WillHeard if is_will else PresenceHeard)(sender=sender, payload=payload, via=key, at=now)
            state["table"] = update_peer_table(state["table"], event)
        notify()

    def open_link(key: str, host: str, port: int) -> mqtt.Client:
        client = _new_client(f"iplm-{node_id}-{random_secrets.token_hex(4)}", secrets, timing)

        def on_connect(client, _userdata, _flags, reason_code, _properties) -> None:
            with lock:
                link = links.get(key)
                if link is None:
                    return
                if reason_code.is_failure:
                    if link["state"] != "refused":
                        _log.warning("the broker at %s refused us: %s (another mesh?)", key, reason_code)
                    link["state"] = "refused"
                    client.reconnect_delay_set(*_REFUSED_RETRY_S)
                    return
                link.update(state="connected", down_since=None, lost=False)
            client.reconnect_delay_set(min_delay=0.1, max_delay=timing.reconnect_max_s)
            client.subscribe(f"{prefix}/+", qos=1)

        def on_disconnect(_client, _userdata, _flags, _reason_code, _properties) -> None:
            with lock:
                link = links.get(key)
                if link is not None and link["state"] not in ("refused", "self"):
                    link["state"] = "down"
                    if link["down_since"] is None:
                        link["down_since"] = time.monotonic()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = lambda _client, _userdata, message: handle_message(key, message.topic, message.payload)
        client.connect_async(host, port, keepalive=timing.keepalive_s)
        client.loop_start()
        return client

    def ensure_link(host: str, port: int, via: str, node: str | None = None) -> str:
        key = format_peer_address(host, port)
        with lock:
            if state["stopped"] or key in links:
                return key
            links[key] = {"state": "connecting", "via": via, "node": node, "down_since": None, "lost": False,
                          "client": None}
        client = open_link(key, host, port)
        with lock:
            links[key]["client"] = client
        return key

    def close_link(key: str) -> None:
        with lock:
            link = links.pop(key, None)
        if link is None:
            return
        if link["client"] is not None:
            link["client"].disconnect()
            link["client"].loop_stop()
        apply(LinkLost(via=key, at=time.time()))
        notify()

    def on_mdns_add(peer: MdnsPeer) -> None:
        if peer.node_id == node_id:
            return
        key = format_peer_address(peer.host, peer.broker_port)
        with lock:
            old = mdns_links.get(peer.node_id)
            mdns_links[peer.node_id] = key
        if old is not None and old != key:  # the unit moved (new address or port)
            close_link(old)
        ensure_link(peer.host, peer.broker_port, "mdns", peer.node_id)

    def on_mdns_remove(peer: MdnsPeer) -> None:
        with lock:
            key = mdns_links.pop(peer.node_id, None)
            manual = key is not None and links.get(key, {}).get("via") == "manual"
        if key is not None and not manual:
            close_link(key)

    def on_ble(sighting: BleSighting) -> None:
        with lock:
            state["proximity"] = update_ble_proximity(state["proximity"], sighting, now=time.time())

    def describe_peers() -> dict:
        with lock:
            peers = {node: dict(entry) for node, entry in state["table"].items()}
            for node, near in state["proximity"].items():
                if node in peers:
                    peers[node]["rssi"] = near["rssi"]
        return peers

    def describe_links() -> dict:
        with lock:
            return {key: {"state": link["state"], "via": link["via"], "node": link["node"]}
                    for key, link in links.items()}

    def describe_drops() -> dict:
        with lock:
            return dict(drops)

    def tick() -> None:
        while not stop_event.wait(_TICK_S):
            try:
                if time.monotonic() >= state["next_heartbeat"]:
                    publish_presence()
                now, mono = time.time(), time.monotonic()
                with lock:
                    for key, link in links.items():
                        if (link["down_since"] is not None and not link["lost"]
                                and mono - link["down_since"] >= timing.link_grace_s):
                            link["lost"] = True
                            state["table"] = update_peer_table(state["table"], LinkLost(via=key, at=now))
                    state["table"] = update_peer_table(state["table"],
                                                       ClockTicked(at=now, gone_after_s=timing.gone_after_s))
                    selves = [key for key, link in links.items() if link["state"] == "self"]
                for key in selves:  # closed here: a paho thread cannot stop its own loop
                    with lock:
                        link = links.get(key)
                    if link is not None and link["client"] is not None:
                        link["client"].disconnect()
                        link["client"].loop_stop()
                        link["client"] = None
                notify()
            except Exception:
                _log.exception("the mesh agent's tick failed")

    # (a) the own broker
    own = _new_client(f"iplm-{node_id}-own-{random_secrets.token_hex(4)}", secrets, timing)

    def on_own_connect(_client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            _log.error("this unit's own broker refused the mesh credentials: %s", reason_code)
            return
        own_connected.set()
        publish_presence()

    def on_own_disconnect(_client, _userdata, _flags, _reason_code, _properties) -> None:
        own_connected.clear()
        if not state["stopped"]:
            # A fresh will id per connection: a will captured from an earlier connection no longer counts.
            state["will_id"] = random_secrets.token_hex(8)
            arm_will()

    own.on_connect = on_own_connect
    own.on_disconnect = on_own_disconnect
    arm_will()
    own.connect_async(broker_host, broker_port, keepalive=timing.keepalive_s)
    own.loop_start()
    if not own_connected.wait(_OWN_CONNECT_WAIT_S):
        _log.warning("this unit's broker at %s:%d does not answer yet; retrying", broker_host, broker_port)

    # (b) discovery and the peers' brokers
    zeroconf, stoppers = None, []
    if discovery:
        from zeroconf import Zeroconf

        from appliance.mesh.discovery.advertise_mdns import advertise_mdns
        from appliance.mesh.discovery.browse_mdns import browse_mdns

        zeroconf = Zeroconf(interfaces=[advertise_address])
        stoppers.append(browse_mdns(zeroconf, mesh_id=mesh_id, on_add=on_mdns_add, on_remove=on_mdns_remove))
        stoppers.append(advertise_mdns(zeroconf, node_id=node_id, mesh_id=mesh_id, address=advertise_address,
                                       broker_port=broker_port, portal_port=portal_port))
    if ble:
        from appliance.mesh.discovery.scan_ble_peers import scan_ble_peers

        try:
            stoppers.append(scan_ble_peers(mesh_id=mesh_id, node_id=node_id, on_sighting=on_ble))
        except MeshError as exc:
            _log.info("no BLE discovery: %s", exc.message)
        try:
            stoppers.append(_start_ble_advertising(mesh_id, node_id))
        except MeshError as exc:
            _log.info("not advertising over BLE: %s", exc.message)
    for host, port in manual_peers:
        ensure_link(host, int(port), "manual")
    ticker = threading.Thread(target=tick, name="iplm-mesh-tick", daemon=True)
    ticker.start()

    def add_peer(host: str, port: int) -> None:
        ensure_link(host, int(port), "manual")

    def stop() -> None:
        with lock:
            if state["stopping"]:
                return
            state["stopping"] = True
        stop_event.set()
        ticker.join(timeout=5)
        # Say goodbye on the own broker first (retained; peers mark us "left"), then on mDNS, then
        # disconnect cleanly so that no will fires.
        info = publish_presence("gone")
        if info is not None:
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                pass
        for stopper in reversed(stoppers):  # unregistering sends the mDNS goodbye
            stopper()
        with lock:
            state["stopped"] = True
            closing = list(links.values())
            links.clear()
        own.disconnect()
        own.loop_stop()
        for link in closing:
            if link["client"] is not None:
                link["client"].disconnect()
                link["client"].loop_stop()
        if zeroconf is not None:
            zeroconf.close()

    return MeshAgent(node_id=node_id, mesh_id=mesh_id, peers=describe_peers, links=describe_links,
                     drops=describe_drops, add_peer=add_peer, stop=stop)
