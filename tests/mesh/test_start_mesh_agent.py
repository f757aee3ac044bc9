"""The mesh agent on loopback (no namespaces): two units with their own brokers, peers given by hand."""

import getpass
import shutil
import socket
import time

import pytest

from appliance.mesh.agent.mesh_agent_types import AgentTiming
from appliance.mesh.agent.presence_types import PresenceModel
from appliance.mesh.agent.start_mesh_agent import start_mesh_agent
from appliance.mesh.broker.render_mosquitto_acl import render_mosquitto_acl
from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.mesh.broker.start_broker import start_broker
from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_types import MeshKey

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed"), pytest.mark.timeout(60)]

KEY, OTHER_KEY = MeshKey(secret=bytes(range(32))), MeshKey(secret=bytes(range(1, 33)))
SECRETS, OTHER = derive_mesh_secrets(KEY), derive_mesh_secrets(OTHER_KEY)
A, B, C = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"
FAST = AgentTiming(heartbeat_s=0.5, gone_after_s=3.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def brokers(tmp_path):
    started = []

    def start(name, node_id, key=KEY):
        # A unit's broker, with the unit's own certificate (in its data dir, where its agent finds it too).
        directory = tmp_path / name
        directory.mkdir()
        port = _free_port()
        identity = ensure_unit_identity(directory, node_id, key)
        (directory / "mosquitto.acl").write_text(render_mosquitto_acl())
        conf = directory / "mosquitto.conf"
        conf.write_text(
            render_mosquitto_conf(
                listeners=[("127.0.0.1", port)],
                user=getpass.getuser(),
                tls_dir=identity.key_path.parent,
                acl_file=directory / "mosquitto.acl",
            )
        )
        started.append(start_broker(conf))
        return directory, port

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def agents():
    started = []

    def start(data_dir, node_id, port, peers=(), key=KEY, describe=None, on_work=None):
        agent = start_mesh_agent(
            data_dir=data_dir,
            node_id=node_id,
            secrets=derive_mesh_secrets(key),
            identity=ensure_unit_identity(data_dir, node_id, key),
            broker_host="127.0.0.1",
            broker_port=port,
            describe_unit=describe or (lambda: {"name": node_id[:4]}),
            advertise_address="127.0.0.1",
            portal_port=8080,
            discovery=False,
            manual_peers=peers,
            timing=FAST,
            on_work=on_work,
        )
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def _state(agent, node):
    entry = agent.peers().get(node)
    return entry.state if entry is not None else None


def test_two_units_see_each_other_and_a_clean_stop_is_a_leave(brokers, agents):
    dir_a, port_a = brokers("a", A)
    dir_b, port_b = brokers("b", B)
    agent_a = agents(dir_a, A, port_a, peers=[("127.0.0.1", port_b)])
    agent_b = agents(dir_b, B, port_b, peers=[("127.0.0.1", port_a)])
    assert _wait(lambda: _state(agent_a, B) == "online" and _state(agent_b, A) == "online")
    presence = agent_a.peers()[B].presence
    assert presence.name == "bbbb" and presence.node == B and presence.state == "online"
    assert (presence.broker, presence.portal, presence.address) == (port_b, 8080, "127.0.0.1")
    assert len(presence.will_id) == 16
    assert agent_a.links() == {f"127.0.0.1:{port_b}": {"state": "connected", "via": "manual", "node": B}}
    first_seen = agent_a.peers()[B].last_seen
    assert _wait(lambda: agent_a.peers()[B].last_seen > first_seen)  # the heartbeat
    assert (dir_a / "mesh_counter").read_text().strip().isdigit()
    agent_b.stop()
    assert _wait(lambda: _state(agent_a, B) == "gone")
    assert agent_a.peers()[B].reason == "left"
    agent_b = agents(dir_b, B, port_b, peers=[("127.0.0.1", port_a)])  # back, same data dir
    assert _wait(lambda: _state(agent_a, B) == "online")


def test_a_manual_peer_that_is_this_unit_is_recognised(brokers, agents):
    dir_a, port_a = brokers("a", A)
    agent_a = agents(dir_a, A, port_a)
    agent_a.add_peer("127.0.0.1", port_a)
    assert _wait(lambda: agent_a.links()[f"127.0.0.1:{port_a}"]["state"] == "self")
    assert agent_a.peers() == {}


def test_a_broker_of_another_mesh_never_gets_past_the_handshake_and_nothing_is_seen(brokers, agents):
    dir_a, port_a = brokers("a", A)
    dir_b, port_b = brokers("b", B)
    dir_c, port_c = brokers("c", C, OTHER_KEY)
    agent_a = agents(dir_a, A, port_a, peers=[("127.0.0.1", port_c), ("127.0.0.1", port_b)])
    agent_c = agents(dir_c, C, port_c, peers=[("127.0.0.1", port_a)], key=OTHER_KEY)
    agents(dir_b, B, port_b)
    # Unit b (same mesh, joined later) is seen; by then unit c's connection attempts have failed many times over.
    assert _wait(lambda: _state(agent_a, B) == "online")
    time.sleep(1.0)
    assert agent_a.links()[f"127.0.0.1:{port_c}"]["state"] == "connecting"
    assert agent_c.links()[f"127.0.0.1:{port_a}"]["state"] == "connecting"
    assert set(agent_a.peers()) == {B} and agent_c.peers() == {}


def test_a_presence_too_big_to_seal_goes_out_without_its_piece_maps(brokers, agents):
    dir_a, port_a = brokers("a", A)
    dir_b, port_b = brokers("b", B)
    huge = {"n": 8_000_000, "bitmap": "A" * 400_000}  # over the 256 KiB envelope
    agent_a = agents(dir_a, A, port_a, peers=[("127.0.0.1", port_b)])
    agents(dir_b, B, port_b, describe=lambda: {"models": [{"id": "m", "state": "partial", "pieces": huge}]})
    assert _wait(lambda: _state(agent_a, B) == "online")
    presence = agent_a.peers()[B].presence
    assert presence.pieces_omitted is True and presence.models == (PresenceModel(id="m", state="partial"),)


def test_ble_sightings_add_rssi_to_known_peers(brokers, agents, monkeypatch):
    from appliance.mesh.agent.mesh_agent_types import BLE_SERVICE_UUID
    from appliance.mesh.discovery.encode_ble_advertisement import encode_ble_advertisement
    from tests.mesh.test_ble_discovery import _install_fake_bleak

    _install_fake_bleak(monkeypatch, [("AA:BB", {BLE_SERVICE_UUID: encode_ble_advertisement(SECRETS.mesh_id, B)}, -58)])
    dir_a, port_a = brokers("a", A)
    dir_b, port_b = brokers("b", B)
    agents(dir_b, B, port_b)
    agent_a = start_mesh_agent(
        data_dir=dir_a,
        node_id=A,
        secrets=SECRETS,
        identity=ensure_unit_identity(dir_a, A, KEY),
        broker_host="127.0.0.1",
        broker_port=port_a,
        describe_unit=dict,
        advertise_address="127.0.0.1",
        portal_port=8080,
        discovery=False,
        manual_peers=[("127.0.0.1", port_b)],
        ble_adapter="hci0",
        timing=FAST,
    )
    try:
        assert _wait(lambda: B in agent_a.peers() and agent_a.peers()[B].rssi == -58)
    finally:
        agent_a.stop()


def test_a_job_travels_to_the_peers_broker_and_its_results_come_back_on_it(brokers, agents):
    received = {A: [], B: [], C: []}
    dir_a, port_a = brokers("a", A)
    dir_b, port_b = brokers("b", B)
    dir_c, port_c = brokers("c", C)
    peers_of = {
        A: [("127.0.0.1", port_b), ("127.0.0.1", port_c)],
        B: [("127.0.0.1", port_a)],
        C: [("127.0.0.1", port_b)],
    }
    agent = {
        node: agents(
            directory, node, port, peers=peers_of[node], on_work=lambda *work, n=node: received[n].append(work)
        )
        for node, directory, port in ((A, dir_a, port_a), (B, dir_b, port_b), (C, dir_c, port_c))
    }
    assert _wait(lambda: _state(agent[A], B) == "online" and _state(agent[B], A) == "online")
    assert _wait(lambda: _state(agent[A], C) == "online" and _state(agent[C], B) == "online")
    assert agent[A].send_work("job", B, {"type": "chat", "job": "j1"}) is True
    assert _wait(lambda: received[B] == [("job", A, {"type": "chat", "job": "j1"})])
    for seq in range(30):  # a streamed reply: in order, each once
        assert agent[B].send_work("result", A, {"type": "delta", "job": "j1", "seq": seq}) is True
    assert _wait(lambda: len(received[A]) == 30)
    assert [payload["seq"] for kind, sender, payload in received[A]] == list(range(30))
    assert {(kind, sender) for kind, sender, _ in received[A]} == {("result", B)}
    # C is a member with a link to B's broker: it can send B a job, but it never reads B's results for A,
    # and its own "result" for A, written on B's broker, is not delivered to A as B's.
    assert agent[C].send_work("job", B, {"type": "chat", "job": "c1"}) is True
    assert _wait(lambda: ("job", C, {"type": "chat", "job": "c1"}) in received[B])
    assert received[C] == []
    # No link to the unit: nothing is sent, and the caller knows it.
    assert agent[B].send_work("job", C, {"type": "chat"}) is False
    assert agent[A].drops() == {}
