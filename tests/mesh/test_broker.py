"""Real mosquitto brokers on 127.0.0.1: the rendered config, the derived credentials, restarts."""

import getpass
import os
import pwd
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.mesh.broker.start_broker import start_broker
from appliance.mesh.broker.write_broker_credentials import write_broker_credentials
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.mesh_errors import BrokerError
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.open_mesh_message import open_mesh_message
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message
from tests.mesh.mqtt_test_client import connect_test_client

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")

ROOT = Path(__file__).resolve().parents[2]
SECRETS = derive_mesh_secrets(MeshKey(secret=bytes(range(32))))
OTHER_MESH = derive_mesh_secrets(MeshKey(secret=bytes(range(1, 33))))
PRESENCE = f"iplm/{SECRETS.mesh_id}/presence"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_conf(tmp_path: Path, port: int, secrets=SECRETS, **overrides) -> Path:
    password_file = write_broker_credentials(tmp_path / "passwd", secrets)
    options = {
        "listeners": [("127.0.0.1", port)],
        "password_file": password_file,
        "user": getpass.getuser(),
        **overrides,
    }  # as root, mosquitto would switch to "mosquitto"
    conf_path = tmp_path / "mosquitto.conf"
    conf_path.write_text(render_mosquitto_conf(**options))
    return conf_path


@pytest.fixture
def broker(tmp_path):
    running = start_broker(_write_conf(tmp_path, _free_port()))
    yield running
    running.stop()
    assert running.process().poll() is not None


@pytest.fixture
def clients():
    opened = []

    def connect(port, **kwargs):
        opened.append(connect_test_client(port, **kwargs))
        return opened[-1]

    yield connect
    for client in opened:
        client.close()


def _member(clients, broker, client_id, secrets=SECRETS):
    client = clients(
        broker.port, username=secrets.broker_username, password=secrets.broker_password, client_id=client_id
    )
    assert not client.wait_connack().is_failure
    return client


def test_members_connect_and_exchange_sealed_messages(broker, clients):
    receiver = _member(clients, broker, "unit-b")
    receiver.subscribe(f"{PRESENCE}/+")
    sender = _member(clients, broker, "unit-a")
    now = time.time()
    raw = seal_mesh_message(SECRETS, "unit-a", f"{PRESENCE}/unit-a", {"state": "online"}, now=now, counter=1)
    sender.client.publish(f"{PRESENCE}/unit-a", raw, qos=1, retain=True).wait_for_publish(5)
    message = receiver.wait_message()
    assert open_mesh_message(SECRETS, message.topic, message.payload, {}, now=time.time())[:2] == (
        "unit-a",
        {"state": "online"},
    )
    # A late subscriber gets the retained presence: the same message, so "replay" for a receiver that saw it.
    late = _member(clients, broker, "unit-c")
    late.subscribe(f"{PRESENCE}/+")
    assert late.wait_message().retain


@pytest.mark.parametrize(
    "username, password",
    [
        (SECRETS.broker_username, "wrong"),
        (SECRETS.broker_username, ""),
        (OTHER_MESH.broker_username, OTHER_MESH.broker_password),  # a unit of another mesh
        (SECRETS.broker_username, OTHER_MESH.broker_password),
        ("", ""),
        (None, None),  # anonymous
    ],
)
def test_everyone_else_is_refused_with_not_authorized(broker, clients, username, password):
    reason = clients(broker.port, username=username, password=password).wait_connack()
    assert reason.is_failure and reason.getName() == "Not authorized"


def test_mqtt_3_1_1_clients_are_refused_too(broker, clients):
    import paho.mqtt.client as mqtt

    reason = clients(
        broker.port, username=SECRETS.broker_username, password="wrong", protocol=mqtt.MQTTv311
    ).wait_connack()
    assert reason.is_failure and reason.getName() == "Not authorized"


def test_the_broker_listens_on_its_listener_address_only(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=1):
        pass
    with pytest.raises(OSError):  # 127.0.0.2 reaches this machine too, but nothing listens there
        socket.create_connection(("127.0.0.2", broker.port), timeout=1).close()


def test_a_restarted_broker_takes_members_back(broker, clients):
    receiver = _member(clients, broker, "unit-b")
    receiver.subscribe(f"{PRESENCE}/+")
    sender = _member(clients, broker, "unit-a")
    first_pid = broker.process().pid
    broker.restart()
    assert broker.process().pid != first_pid and broker.process().poll() is None
    assert not receiver.wait_connack().is_failure and not sender.wait_connack().is_failure
    receiver.wait_suback()  # resubscribed
    raw = seal_mesh_message(SECRETS, "unit-a", f"{PRESENCE}/unit-a", {"state": "back"}, now=time.time(), counter=2)
    sender.client.publish(f"{PRESENCE}/unit-a", raw, qos=1).wait_for_publish(5)
    assert open_mesh_message(SECRETS, f"{PRESENCE}/unit-a", receiver.wait_message().payload, {}, now=time.time())[
        1
    ] == {"state": "back"}


def test_a_dead_broker_is_restarted(broker, clients):
    broker.process().kill()
    broker.process().wait()
    broker.restart()  # what the agent does when it sees the process gone
    _member(clients, broker, "unit-a")


def test_retained_presence_does_not_outlive_the_broker(broker, clients):
    sender = _member(clients, broker, "unit-a")
    sender.client.publish(f"{PRESENCE}/unit-a", b"{}", qos=1, retain=True).wait_for_publish(5)
    sender.close()
    broker.restart()
    late = _member(clients, broker, "unit-c")
    late.subscribe(f"{PRESENCE}/+")
    with pytest.raises(queue.Empty):  # persistence is off: units republish presence when they connect
        late.wait_message(timeout=0.3)


def test_joining_another_mesh_takes_a_credentials_rewrite_and_a_reload(broker, clients, tmp_path):
    write_broker_credentials(tmp_path / "passwd", OTHER_MESH)
    broker.reload()
    deadline = time.monotonic() + 5
    while True:  # SIGHUP is handled asynchronously
        reason = clients(
            broker.port, username=OTHER_MESH.broker_username, password=OTHER_MESH.broker_password
        ).wait_connack()
        if not reason.is_failure or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not reason.is_failure
    old = clients(broker.port, username=SECRETS.broker_username, password=SECRETS.broker_password)
    assert old.wait_connack().getName() == "Not authorized"


def test_a_will_sealed_at_connect_reaches_members_when_a_unit_dies(broker, clients):
    receiver = _member(clients, broker, "unit-b")
    receiver.subscribe(f"{PRESENCE}/+")
    script = (
        "import sys, time\n"
        "from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets\n"
        "from appliance.mesh.key.parse_mesh_key import parse_mesh_key\n"
        "from appliance.mesh.messages.seal_mesh_message import seal_mesh_message\n"
        "from tests.mesh.mqtt_test_client import connect_test_client\n"
        "secrets = derive_mesh_secrets(parse_mesh_key(sys.argv[1]))\n"
        "topic = sys.argv[3]\n"
        "will = seal_mesh_message(secrets, 'unit-a', topic, {'state': 'offline'}, now=time.time(),"
        " counter=10, will=True)\n"
        "client = connect_test_client(int(sys.argv[2]), username=secrets.broker_username,"
        " password=secrets.broker_password, client_id='unit-a', will=(topic, will, 1, True))\n"
        "assert not client.wait_connack().is_failure\n"
        "print('connected', flush=True)\n"
        "time.sleep(60)\n"
    )
    key_text = create_mesh_key(bytes(range(32)))
    assert derive_mesh_secrets(parse_mesh_key(key_text)) == SECRETS
    unit = subprocess.Popen(
        [sys.executable, "-c", script, key_text, str(broker.port), f"{PRESENCE}/unit-a"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert unit.stdout.readline().strip() == "connected"
        unit.kill()  # no DISCONNECT: the broker publishes the will
        unit.wait()
    finally:
        if unit.poll() is None:
            unit.kill()
            unit.wait()
        unit.stdout.close()
    message = receiver.wait_message()
    state = {"unit-a": 10**12}  # we heard newer live messages from unit-a: the will still counts
    sender, payload, new_state = open_mesh_message(
        SECRETS, message.topic, message.payload, state, now=time.time() + 600
    )
    assert (sender, payload, new_state) == ("unit-a", {"state": "offline"}, state)


def test_a_config_mosquitto_rejects_fails_with_its_own_words(tmp_path):
    conf_path = _write_conf(tmp_path, _free_port(), password_file=tmp_path / "missing")
    with pytest.raises(BrokerError) as info:
        start_broker(conf_path)
    assert "password file" in info.value.message and "exited with status" in info.value.message


def test_a_taken_port_fails_instead_of_looking_ready(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        conf_path = _write_conf(tmp_path, squatter.getsockname()[1])
        with pytest.raises(BrokerError) as info:
            start_broker(conf_path)
    assert "in use" in info.value.message


def test_a_config_without_listener_is_refused_before_starting(tmp_path):
    (tmp_path / "empty.conf").write_text("allow_anonymous false\n")
    with pytest.raises(BrokerError):
        start_broker(tmp_path / "empty.conf")


def test_errors_logged_to_a_file_still_reach_the_exception(tmp_path):
    (tmp_path / "mosquitto.log").write_text("an earlier run's line\n")
    conf_path = _write_conf(
        tmp_path, _free_port(), log_path=tmp_path / "mosquitto.log", password_file=tmp_path / "missing"
    )
    with pytest.raises(BrokerError) as info:
        start_broker(conf_path)
    assert "Unable to open pwfile" in info.value.message and "earlier run" not in info.value.message


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.mark.skipif(os.geteuid() != 0 or not _has_user("mosquitto"), reason="needs root and a mosquitto user")
def test_started_as_root_the_broker_drops_to_mosquitto_and_reads_its_own_password_file():
    # The image's way: systemd starts mosquitto as root, mosquitto switches to "mosquitto" right after
    # reading the config, so the password file must belong to that account (mode 0600).
    directory = Path(tempfile.mkdtemp(prefix="iplm-mesh-"))  # tmp_path's parents are closed to others
    try:
        directory.chmod(0o755)
        password_file = write_broker_credentials(directory / "passwd", SECRETS, owner="mosquitto")
        assert password_file.stat().st_uid == pwd.getpwnam("mosquitto").pw_uid
        conf_path = directory / "mosquitto.conf"
        port = _free_port()
        conf_path.write_text(render_mosquitto_conf(listeners=[("127.0.0.1", port)], password_file=password_file))
        broker = start_broker(conf_path)
        try:
            status = Path(f"/proc/{broker.process().pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert int(uid_line.split()[1]) == pwd.getpwnam("mosquitto").pw_uid
            client = connect_test_client(port, username=SECRETS.broker_username, password=SECRETS.broker_password)
            try:
                assert not client.wait_connack().is_failure
            finally:
                client.close()
        finally:
            broker.stop()
    finally:
        shutil.rmtree(directory)
