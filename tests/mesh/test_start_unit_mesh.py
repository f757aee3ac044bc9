"""A unit's mesh side on loopback: no key, no mesh; the broker is supervised; the status file; manual peers."""

import json
import shutil
import signal
import socket
import time

import pytest

from appliance.mesh.agent.mesh_agent_types import AgentTiming
from appliance.mesh.agent.start_unit_mesh import start_unit_mesh
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.store.open_database import open_database
from appliance.store.write_setting import write_setting

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed"), pytest.mark.timeout(60)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, timeout=8.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _start(data_dir, node_id, port):
    return start_unit_mesh(
        data_dir=data_dir,
        node_id=node_id,
        mesh_address="127.0.0.1",
        portal_port=8080,
        describe_unit=lambda: {"name": node_id[:4]},
        broker_port=port,
        discovery=False,
        timing=AgentTiming(heartbeat_s=0.5),
    )


def test_a_unit_without_a_key_has_no_mesh(tmp_path):
    open_database(tmp_path)
    assert _start(tmp_path, "a" * 16, _free_port()) is None


def test_the_broker_is_restarted_when_it_dies_and_manual_peers_are_picked_up(tmp_path):
    key = create_mesh_key()
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    port_a, port_b = _free_port(), _free_port()
    for directory in (dir_b, dir_a):  # the database last opened is the one the settings go to: unit a's
        store_mesh_key(directory, key)
        open_database(directory)
    write_setting("mesh.manual_peers", [f"127.0.0.1:{port_b}"])
    unit_a = _start(dir_a, "a" * 16, port_a)
    unit_b = _start(dir_b, "b" * 16, port_b)
    try:
        assert (dir_a / "mesh" / "tls" / "unit.key").stat().st_mode & 0o077 == 0
        assert "require_certificate true" in (dir_a / "mesh" / "mosquitto.conf").read_text()
        assert _wait(lambda: "b" * 16 in unit_a.agent.peers() and unit_a.agent.peers()["b" * 16].state == "online")
        status_file = dir_a / "mesh" / "status.json"  # written by the watcher, once a second at most
        assert _wait(lambda: status_file.exists() and "b" * 16 in json.loads(status_file.read_text())["peers"])
        status = json.loads(status_file.read_text())
        assert status["peers"]["b" * 16]["state"] == "online" and status["mesh_id"] == unit_a.agent.mesh_id
        old_pid = unit_b.broker.process().pid
        unit_b.broker.process().send_signal(signal.SIGKILL)
        assert _wait(lambda: unit_b.broker.process().pid != old_pid and unit_b.broker.process().poll() is None)
        killed_at = time.time()
        # Unit b's agent republishes on its restarted broker, and unit a reconnects to it.
        assert _wait(
            lambda: (
                unit_a.agent.peers()["b" * 16].last_seen > killed_at
                and unit_a.agent.peers()["b" * 16].state == "online"
            )
        )
    finally:
        unit_b.stop()
        unit_a.stop()
    assert unit_a.broker.process().poll() is not None and not (dir_a / "mesh" / "status.json").exists()
