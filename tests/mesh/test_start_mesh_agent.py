"""The mesh agent on loopback (no namespaces): two units with their own brokers, peers given by hand."""

import getpass
import shutil
import socket
import time

import pytest

from appliance.mesh.agent.mesh_agent_types import AgentTiming
from appliance.mesh.agent.presence_types import PresenceModel
from appliance.mesh.agent.start_mesh_agent import start_mesh_agent
from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.mesh.broker.start_broker import start_broker
from appliance.mesh.broker.write_broker_credentials import write_broker_credentials
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_types import MeshKey

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed"), pytest.mark.timeout(60)]

SECRETS = derive_mesh_secrets(MeshKey(secret=bytes(range(32))))
OTHER = derive_mesh_secrets(MeshKey(secret=bytes(range(1, 33))))
A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
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

    def start(name, secrets=SECRETS):
        directory = tmp_path / name
        directory.mkdir()
        port = _free_port()
        conf = directory / "mosquitto.conf"
        conf.write_text(
            render_mosquitto_conf(
                listeners=[("127.0.0.1", port)],
                user=getpass.getuser(),
                password_file=write_broker_credentials(directory / "passwd", secrets),
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

    def start(data_dir, node_id, port, peers=(), secrets=SECRETS, describe=None):
        agent = start_mesh_agent(
            data_dir=data_dir,
            node_id=node_id,
            secrets=secrets,
            broker_host="127.0.0.1",
            broker_port=port,
            describe_unit=describe or (lambda: {"name": node_id[:4]}),
            advertise_address="127.0.0.1",
            portal_port=8080,
            discovery=False,
            manual_peers=peers,
            timing=FAST,
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
    dir_a, port_a = brokers("a")
    dir_b, port_b = brokers("b")
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
    dir_a, port_a = brokers("a")
    agent_a = agents(dir_a, A, port_a)
    agent_a.add_peer("127.0.0.1", port_a)
    assert _wait(lambda: agent_a.links()[f"127.0.0.1:{port_a}"]["state"] == "self")
    assert agent_a.peers() == {}


def test_a_broker_of_another_mesh_refuses_and_nothing_is_seen(brokers, agents):
    dir_a, port_a = brokers("a")
    dir_c, port_c = brokers("c", OTHER)
    agent_a = agents(dir_a, A, port_a, peers=[("127.0.0.1", port_c)])
    agent_c = agents(dir_c, "cccccccccccccccc", port_c, peers=[("127.0.0.1", port_a)], secrets=OTHER)
    assert _wait(lambda: agent_a.links()[f"127.0.0.1:{port_c}"]["state"] == "refused")
    assert _wait(lambda: agent_c.links()[f"127.0.0.1:{port_a}"]["state"] == "refused")
    time.sleep(0.5)
    assert agent_a.peers() == {} and agent_c.peers() == {}


def test_a_presence_too_big_to_seal_goes_out_without_its_piece_maps(brokers, agents):
    dir_a, port_a = brokers("a")
    dir_b, port_b = brokers("b")
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
    dir_a, port_a = brokers("a")
    dir_b, port_b = brokers("b")
    agents(dir_b, B, port_b)
    agent_a = start_mesh_agent(
        data_dir=dir_a,
        node_id=A,
        secrets=SECRETS,
        broker_host="127.0.0.1",
        broker_port=port_a,
        describe_unit=dict,
        advertise_address="127.0.0.1",
        portal_port=8080,
        discovery=False,
        manual_peers=[("127.0.0.1", port_b)],
        ble=True,
        timing=FAST,
    )
    try:
        assert _wait(lambda: B in agent_a.peers() and agent_a.peers()[B].rssi == -58)
    finally:
        agent_a.stop()
