"""Start the mesh side of a unit: its own broker (in development) and its mesh agent."""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.mesh.agent.agent_state_types import WorkKind
from appliance.mesh.agent.mesh_agent_types import (
    DEFAULT_BROKER_PORT,
    DEFAULT_TIMING,
    MANUAL_PEERS_SETTING,
    MESH_DIR,
    MESH_STATUS_FILE,
    AgentTiming,
    UnitMesh,
)
from appliance.mesh.agent.start_mesh_agent import start_mesh_agent
from appliance.mesh.broker.render_mosquitto_acl import render_mosquitto_acl
from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.mesh.broker.start_broker import start_broker
from appliance.mesh.discovery.parse_peer_address import parse_peer_address
from appliance.mesh.identity.identity_types import UnitIdentity
from appliance.mesh.identity.load_unit_identity import load_unit_identity
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.mesh_errors import BrokerError
from appliance.store.read_setting import read_setting
from appliance.write_file_atomically import write_file_atomically

_log = logging.getLogger("iplm.mesh")
_WATCH_S = 1.0
_MANUAL_PEERS_EVERY_S = 5.0
# The status file is rewritten when a peer changes state, else this often: not every heartbeat (SD cards).
_STATUS_EVERY_S = 30.0


def _read_manual_peers() -> list[tuple[str, int]]:
    peers = []
    for text in read_setting(MANUAL_PEERS_SETTING, []) or []:
        try:
            peers.append(parse_peer_address(str(text)))
        except ValueError:
            _log.warning("ignoring the manual mesh peer %r: not an address", text)
    return peers


def _start_own_broker(mesh_dir: Path, identity: UnitIdentity, mesh_address: str, broker_port: int):
    acl_path = mesh_dir / "mosquitto.acl"
    write_file_atomically(acl_path, render_mosquitto_acl(), mode=0o600)
    # Loopback for the unit's own agent; the mesh link for peers. Never the access point's side:
    # phones must not reach the broker.
    listeners = [("127.0.0.1", broker_port)]
    if mesh_address != "127.0.0.1":
        listeners.append((mesh_address, broker_port))
    # Started by us (development), mosquitto keeps our account: it must read the 0600 key and ACL.
    # Its log goes to stderr, which start_broker keeps the tail of: nothing written to the SD card.
    conf = render_mosquitto_conf(
        listeners=listeners, tls_dir=identity.key_path.parent, acl_file=acl_path, user=getpass.getuser()
    )
    conf_path = mesh_dir / "mosquitto.conf"
    conf_path.write_text(conf, encoding="utf-8")
    return start_broker(conf_path)


def _write_status(path: Path, agent) -> None:
    status = {
        "updated_at": time.time(),
        "node": agent.node_id,
        "mesh_id": agent.mesh_id,
        "peers": {node: dataclasses.asdict(entry) for node, entry in agent.peers().items()},
        "links": agent.links(),
        "drops": agent.drops(),
    }
    # Rewritten now and then, read by `iplm mesh status`: no need to sync the directory each time.
    write_file_atomically(path, json.dumps(status, indent=1, sort_keys=True), sync_directory=False)


def start_unit_mesh(
    *,
    data_dir,
    node_id: str,
    mesh_address: str,
    portal_port: int,
    describe_unit: Callable[[], dict],
    broker_port: int = DEFAULT_BROKER_PORT,
    run_broker: bool = True,
    discovery: bool = True,
    ble_adapter: str | None = None,
    timing: AgentTiming = DEFAULT_TIMING,
    on_change: Callable[[dict], None] | None = None,
    on_work: Callable[[WorkKind, str, dict], None] | None = None,
) -> UnitMesh | None:
    """Start broker (unless systemd runs it: run_broker=False) and agent; None when the unit has no mesh key.

    Needs the unit's database open (manual peers are a setting). mesh_address: this unit's address on
    the mesh link (Ethernet or the Wi-Fi mesh), where its broker listens and mDNS runs. Raises BrokerError.
    """
    key = load_mesh_key(data_dir)
    loaded = load_unit_identity(data_dir, node_id)
    if key is None or loaded is None:
        return None
    secrets = derive_mesh_secrets(key)
    identity, _ = loaded
    mesh_dir = Path(data_dir) / MESH_DIR
    mesh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    broker = _start_own_broker(mesh_dir, identity, mesh_address, broker_port) if run_broker else None
    status_path = mesh_dir / MESH_STATUS_FILE
    stopping = threading.Event()
    changed = threading.Event()

    def on_agent_change(peers: dict) -> None:
        changed.set()
        if on_change is not None:
            on_change(peers)

    try:
        agent = start_mesh_agent(
            data_dir=data_dir,
            node_id=node_id,
            secrets=secrets,
            identity=identity,
            broker_host="127.0.0.1",
            broker_port=broker_port,
            describe_unit=describe_unit,
            advertise_address=mesh_address,
            portal_port=portal_port,
            discovery=discovery,
            manual_peers=_read_manual_peers(),
            ble_adapter=ble_adapter,
            timing=timing,
            on_change=on_agent_change,
            on_work=on_work,
        )
    except BaseException:
        if broker is not None:
            broker.stop()
        raise

    def watch() -> None:
        # Supervise the broker, pick up `iplm mesh add` from the settings, keep the status file current.
        next_peers = next_status = 0.0
        while not stopping.wait(_WATCH_S):
            try:
                now = time.monotonic()
                if broker is not None and broker.process().poll() is not None:
                    _log.warning("the mesh broker exited (%s); restarting it", broker.process().returncode)
                    try:
                        broker.restart()
                    except BrokerError as exc:
                        _log.error("cannot restart the mesh broker: %s", exc.message)
                if now >= next_peers:
                    next_peers = now + _MANUAL_PEERS_EVERY_S
                    for host, port in _read_manual_peers():
                        agent.add_peer(host, port)
                if changed.is_set() or now >= next_status:
                    changed.clear()
                    next_status = now + _STATUS_EVERY_S
                    _write_status(status_path, agent)
            except Exception:
                _log.exception("the mesh watcher failed")

    watcher = threading.Thread(target=watch, name="iplm-mesh-watch", daemon=True)
    watcher.start()

    def stop() -> None:
        stopping.set()
        watcher.join(timeout=5)
        agent.stop()
        if broker is not None:
            broker.stop()
        status_path.unlink(missing_ok=True)

    return UnitMesh(agent=agent, broker=broker, stop=stop)
