"""The mesh group: the unit's broker attacked (no certificate, another mesh's, plain MQTT, a member speaking for
the unit), and the unit's mesh agent fed hostile messages by a member's own
broker (garbage, a nesting bomb, forgeries, another mesh's seal, a presence naming another unit, a moved topic,
an oversized envelope, a replay, a counter gone back, a flood). The member is a stolen unit: it holds the mesh
key, so it has a valid certificate of its own.

Not here: a member hoarding broker connections. mosquitto's own max_connections miscounts (a failed TLS handshake
lowers its count, eclipse-mosquitto#1460), so the bound is the firewall's (iplm network apply), tested in
tests/network/test_captive_rules.py; this unit runs on loopback without that firewall."""

from __future__ import annotations

import getpass
import json
import queue
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from appliance.mesh.broker.render_mosquitto_acl import render_mosquitto_acl
from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.mesh.broker.start_broker import start_broker
from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.identity.identity_types import UnitIdentity
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.open_mesh_message import open_mesh_message
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message
from benchmarks.hostile.hostile_types import HostileUnit, Keepsake, Probe
from tests.mesh.mqtt_test_client import MqttProbe, connect_test_client

ROOT = Path(__file__).resolve().parents[2]
_THIEF = "00000000000000e2"
_OUTSIDER = "00000000000000e3"
_FLOOD = 200
_WAIT_S = 30.0


def _admitted(connect: Callable[[], MqttProbe], opened: list[MqttProbe]) -> bool:
    try:
        probe = connect()
    except (ssl.SSLError, OSError):
        return False
    opened.append(probe)
    try:
        return not probe.wait_connack(timeout=3).is_failure
    except queue.Empty:
        return False


def _answers_plain_mqtt(port: int) -> bool:
    connect = bytes.fromhex("101000044d5154540402003c0004746573740000")  # MQTT 3.1.1 CONNECT, client "test"
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(connect)
        try:
            return sock.recv(4).startswith(b"\x20")  # a CONNACK
        except OSError:
            return False


def _seal(secrets: MeshSecrets, sender: str, topic: str, payload: dict, counter: int) -> bytes:
    return seal_mesh_message(secrets, sender, topic, payload, now=time.time(), counter=counter)


def _attack_broker(unit: HostileUnit, thief: UnitIdentity, outsider: UnitIdentity, secrets: MeshSecrets) -> list[Probe]:
    port = unit.mesh_port
    opened: list[MqttProbe] = []
    probes: list[Probe] = []
    try:
        admitted = _admitted(lambda: connect_test_client(port, ca_path=thief.ca_path), opened)
        probes.append(Probe("broker: TLS without a certificate", None, not admitted))
        admitted = _admitted(lambda: connect_test_client(port, identity=outsider, ca_path=thief.ca_path), opened)
        probes.append(Probe("broker: a certificate of another mesh", None, not admitted))
        probes.append(Probe("broker: MQTT in clear", None, not _answers_plain_mqtt(port)))
        # A member speaking for the unit itself: the broker's ACL refuses the write, so what any unit reads
        # there is still the unit's own presence.
        topic = f"iplm/{secrets.mesh_id}/presence/{unit.node_id}"
        thief_client = connect_test_client(port, identity=thief)
        opened.append(thief_client)
        thief_client.wait_connack()
        forged = _seal(secrets, unit.node_id, topic, {"node": unit.node_id, "state": "gone"}, time.time_ns())
        thief_client.client.publish(topic, forged, qos=1, retain=True).wait_for_publish(5)
        reader = connect_test_client(port, identity=thief)
        opened.append(reader)
        reader.wait_connack()
        reader.subscribe(topic)
        message, _ = open_mesh_message(secrets, topic, reader.wait_message(timeout=10).payload, {})
        probes.append(
            Probe("broker: a member publishes as the unit", None, message.payload.get("state") == "online", "")
        )
    finally:
        for probe in opened:
            probe.close()
    return probes


def _start_thief_broker(work: Path, thief: UnitIdentity):
    (work / "thief.acl").write_text(render_mosquitto_acl(), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = render_mosquitto_conf(
        listeners=[("127.0.0.1", port)],
        tls_dir=thief.key_path.parent,
        acl_file=work / "thief.acl",
        user=getpass.getuser(),
    )
    (work / "thief.conf").write_text(conf, encoding="utf-8")
    return start_broker(work / "thief.conf"), port


def _read_status(unit: HostileUnit) -> dict:
    try:
        return json.loads((unit.data_dir / "mesh" / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _wait_for_thief(unit: HostileUnit, state: str, name: str) -> dict | None:
    # status.json is rewritten when a peer's state changes (and every 30 s).
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        status = _read_status(unit)
        entry = status.get("peers", {}).get(_THIEF, {})
        if entry.get("state") == state and entry.get("presence", {}).get("name") == name:
            return status
        time.sleep(0.2)
    return None


def _list_hostile_messages(secrets: MeshSecrets, topic: str, first: bytes, counter: int) -> list[tuple[str, bytes]]:
    other_mesh = derive_mesh_secrets(parse_mesh_key(create_mesh_key()))
    sealed = json.loads(_seal(secrets, _THIEF, topic, {"node": _THIEF, "state": "online", "name": "x"}, counter))
    sealed["mac"] = ("0" if sealed["mac"][0] != "0" else "1") + sealed["mac"][1:]
    elsewhere = topic.rsplit("/", 1)[0] + "/" + "0" * 16
    return [
        ("garbage bytes", b"\xff\xfe\x00garbage"),
        ("half a JSON object", b'{"version": 1, "sender"'),
        ("a JSON nesting bomb", b"[" * 200_000),
        ("JSON that is no envelope", b'{"hello": "world"}'),
        ("a forged MAC", json.dumps(sealed).encode()),
        ("sealed with another mesh's key", _seal(other_mesh, _THIEF, topic, {"node": _THIEF}, counter + 1)),
        ("a presence naming another unit", _seal(secrets, _THIEF, topic, {"node": "f" * 16}, counter + 2)),
        ("sealed for another topic", _seal(secrets, _THIEF, elsewhere, {"node": _THIEF}, counter + 3)),
        ("an envelope of 300 KiB", b'{"pad": "' + b"x" * (300 * 1024) + b'"}'),
        ("a replay of its first presence", first),
        ("a counter gone back", _seal(secrets, _THIEF, topic, {"node": _THIEF, "name": "old"}, 5)),
        ("NaN in a payload", b'{"version": 1, "payload": {"load": NaN}}'),
    ] + [(f"flood {i + 1}/{_FLOOD}", json.dumps(sealed).encode()) for i in range(_FLOOD)]


def _feed_agent(unit: HostileUnit, thief: UnitIdentity, secrets: MeshSecrets, work: Path) -> list[Probe]:
    broker, port = _start_thief_broker(work, thief)
    publisher = None
    try:
        publisher = connect_test_client(port, identity=thief)
        publisher.wait_connack()
        topic = f"iplm/{secrets.mesh_id}/presence/{_THIEF}"
        counter = time.time_ns() // 1000
        legit = {"node": _THIEF, "state": "online", "will_id": "w1", "address": "127.0.0.1", "portal": 9}
        first = _seal(secrets, _THIEF, topic, {**legit, "name": "thief-1"}, counter)
        publisher.client.publish(topic, first, qos=1, retain=True).wait_for_publish(5)
        subprocess.run(
            [sys.executable, "-m", "appliance.cli.main", "mesh", "add", f"127.0.0.1:{port}"]
            + ["--data-dir", str(unit.data_dir)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        before = _wait_for_thief(unit, "online", "thief-1")
        if before is None:
            return [Probe("agent: a member's broker, added by hand, is heard", None, False, "never heard")]
        messages = _list_hostile_messages(secrets, topic, first, counter + 10)
        for _, raw in messages:
            publisher.client.publish(topic, raw, qos=1).wait_for_publish(10)
        time.sleep(5.0)  # the link's message budget refills: the next presence is taken
        # Its genuine goodbye: a change of state, which the unit writes down with its drop counts.
        last = _seal(secrets, _THIEF, topic, {**legit, "state": "gone", "name": "thief-2"}, counter + 1000)
        publisher.client.publish(topic, last, qos=1, retain=True).wait_for_publish(5)
        after = _wait_for_thief(unit, "gone", "thief-2")
        dropped = sum((after or {}).get("drops", {}).values()) - sum(before.get("drops", {}).values())
        # Every hostile message was dropped (each counted once, by its reason), and nothing of them took effect:
        # the member's entry is its last genuine presence.
        clean = after is not None and dropped >= len(messages)
        note = "" if clean else f"{dropped} of {len(messages)} counted as dropped"
        return [Probe(f"agent: {label}", None, clean, note) for label, _ in messages]
    finally:
        if publisher is not None:
            publisher.close()
        broker.stop()


def probe_hostile_mesh(unit: HostileUnit, keepsake: Keepsake) -> list[Probe]:
    """Every connection without a certificate of this mesh is dropped at the handshake, the broker keeps a member
    to its own topics, and every hostile message a member's broker delivers is dropped
    by the unit's agent."""
    key = load_mesh_key(unit.data_dir)
    assert key is not None, "the hostile unit has a mesh key"
    work = Path(tempfile.mkdtemp(prefix="iplm-hostile-mesh-"))
    try:
        thief = ensure_unit_identity(work / "thief", _THIEF, key)
        outsider = ensure_unit_identity(work / "outsider", _OUTSIDER, parse_mesh_key(create_mesh_key()))
        return _attack_broker(unit, thief, outsider, unit.secrets) + _feed_agent(unit, thief, unit.secrets, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
