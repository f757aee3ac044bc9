"""Real mosquitto brokers on 127.0.0.1 as a unit runs them: mutual TLS with certificates of the mesh's CA, an ACL
that lets a unit publish on its own topics only, bounded connections; restarts; and the attacks on each."""

import getpass
import os
import pwd
import queue
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appliance.mesh.broker.render_mosquitto_acl import render_mosquitto_acl
from appliance.mesh.broker.render_mosquitto_conf import MAX_CONNECTIONS, render_mosquitto_conf
from appliance.mesh.broker.start_broker import start_broker
from appliance.mesh.identity.derive_mesh_authority import derive_mesh_authority
from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_errors import BrokerError
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.open_mesh_message import open_mesh_message
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message
from tests.mesh.mqtt_test_client import connect_test_client

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")

ROOT = Path(__file__).resolve().parents[2]
KEY, OTHER_KEY = MeshKey(secret=bytes(range(32))), MeshKey(secret=bytes(range(1, 33)))
SECRETS = derive_mesh_secrets(KEY)
PRESENCE = f"iplm/{SECRETS.mesh_id}/presence"
OWNER, A, B, C = "0000000000000000", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_conf(tmp_path: Path, port: int, key=KEY, **overrides) -> Path:
    identity = ensure_unit_identity(tmp_path / "owner", OWNER, key)
    (tmp_path / "mosquitto.acl").write_text(render_mosquitto_acl())
    options = {
        "listeners": [("127.0.0.1", port)],
        "tls_dir": identity.key_path.parent,
        "acl_file": tmp_path / "mosquitto.acl",
        "user": getpass.getuser(),  # as root, mosquitto would switch to "mosquitto"
        **overrides,
    }
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
def units(tmp_path):
    """unit(node_id, key=KEY): the identity of a unit of that mesh (its own key, its certificate)."""
    return lambda node_id, key=KEY: ensure_unit_identity(tmp_path / f"unit-{node_id}", node_id, key)


@pytest.fixture
def clients():
    opened = []

    def connect(port, **kwargs):
        opened.append(connect_test_client(port, **kwargs))
        return opened[-1]

    yield connect
    for client in opened:
        client.close()


def _member(clients, broker, identity):
    client = clients(broker.port, identity=identity, client_id=f"iplm-{identity.node_id}")
    assert not client.wait_connack().is_failure
    return client


def _seal(sender: str, payload: dict, counter: int, topic_of: str | None = None) -> tuple[str, bytes]:
    topic = f"{PRESENCE}/{topic_of or sender}"
    return topic, seal_mesh_message(SECRETS, sender, topic, payload, now=time.time(), counter=counter)


def test_members_connect_with_their_certificates_and_exchange_sealed_messages(broker, clients, units):
    receiver = _member(clients, broker, units(B))
    receiver.subscribe(f"{PRESENCE}/+")
    sender = _member(clients, broker, units(A))
    topic, raw = _seal(A, {"state": "online"}, 1)
    sender.client.publish(topic, raw, qos=1, retain=True).wait_for_publish(5)
    message = receiver.wait_message()
    opened, _ = open_mesh_message(SECRETS, message.topic, message.payload, {})
    assert (opened.sender, opened.payload) == (A, {"state": "online"})
    # The broker showed its own certificate: the unit it belongs to, signed by the mesh's CA.
    certificate = receiver.client.socket().getpeercert()
    assert dict(pair for entry in certificate["subject"] for pair in entry)["commonName"] == OWNER
    # A late subscriber gets the retained presence: the same message, so "replay" for a receiver that saw it.
    late = _member(clients, broker, units(C))
    late.subscribe(f"{PRESENCE}/+")
    assert late.wait_message().retain


def _assert_never_admitted(connect) -> None:
    """The broker never answers this client's CONNECT with success: the handshake fails at once (TLS 1.2), or the
    broker drops the connection after it (TLS 1.3 ends the client's side of the handshake first)."""
    try:
        probe = connect()
    except (ssl.SSLError, OSError):
        return
    try:
        reason = probe.wait_connack(timeout=2)
    except queue.Empty:
        return
    assert reason.is_failure, "admitted"


def _self_signed_identity(tmp_path: Path, node_id: str):
    """A certificate with a unit's CN that the mesh's CA never signed (its own CA, from a made-up key)."""
    return ensure_unit_identity(tmp_path / "forger", node_id, MeshKey(secret=os.urandom(32)))


@pytest.mark.parametrize("who", ["no certificate", "another mesh", "a forged CA with our unit's name"])
def test_nobody_without_a_certificate_of_this_mesh_gets_past_the_handshake(broker, clients, units, tmp_path, who):
    # What an attacker on the Ethernet, a unit of another mesh, or a forger can do: nothing reaches MQTT.
    our_ca = units(A).ca_path
    if who == "no certificate":
        attempt = {"ca_path": our_ca}
    elif who == "another mesh":
        attempt = {"identity": units(C, OTHER_KEY), "ca_path": our_ca}
    else:
        attempt = {"identity": _self_signed_identity(tmp_path, A), "ca_path": our_ca}
    _assert_never_admitted(lambda: clients(broker.port, **attempt))
    _member(clients, broker, units(B))  # and the broker still serves the mesh


def test_plain_mqtt_and_old_passwords_get_nothing(broker):
    # The broker speaks TLS only: an MQTT CONNECT in clear (what units sent before) is not even answered as MQTT.
    connect = bytes.fromhex("101000044d5154540402003c0004746573740000")
    with socket.create_connection(("127.0.0.1", broker.port), timeout=2) as sock:
        sock.sendall(connect)
        try:
            answer = sock.recv(64)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20")  # never a CONNACK


def test_a_member_cannot_publish_for_another_unit(broker, clients, units):
    # A broken or stolen unit of the mesh holds the mesh key and can seal in anyone's name; the broker's ACL
    # keeps it to its own topics, so its forgery never reaches a subscriber.
    receiver = _member(clients, broker, units(C))
    receiver.subscribe(f"{PRESENCE}/+")
    hostile = _member(clients, broker, units(B))
    for counter, victim in enumerate([A, OWNER, "ffffffffffffffff"]):
        topic, raw = _seal(victim, {"state": "gone"}, counter + 1)
        hostile.client.publish(topic, raw, qos=1, retain=True).wait_for_publish(5)
    topic, raw = _seal(B, {"state": "online"}, 10)
    hostile.client.publish(topic, raw, qos=1).wait_for_publish(5)
    # Only its own presence arrives; the three forgeries were dropped by the broker (published in order before it).
    assert receiver.wait_message().topic == f"{PRESENCE}/{B}"
    with pytest.raises(queue.Empty):
        receiver.wait_message(timeout=0.3)


def test_a_member_reads_presence_and_nothing_of_the_broker(broker, clients, units):
    member = _member(clients, broker, units(B))
    member.client.subscribe("$SYS/#", qos=1)  # the broker's own retained facts ($SYS/broker/version, ...)
    member.wait_suback()
    with pytest.raises(queue.Empty):
        member.wait_message(timeout=0.5)
    member.client.subscribe("#", qos=1)
    member.wait_suback()
    sender = _member(clients, broker, units(A))
    topic, raw = _seal(A, {"state": "online"}, 1)
    sender.client.publish(topic, raw, qos=1).wait_for_publish(5)
    assert member.wait_message().topic == topic  # presence, and only presence, is delivered


def test_work_reaches_only_the_unit_it_is_for_and_only_from_its_sender(broker, clients, units):
    # The broker is OWNER's. Jobs for OWNER come from members on it; OWNER's results go out on it.
    work = PRESENCE.rsplit("/", 1)[0]
    owner, a, b = (_member(clients, broker, units(node)) for node in (OWNER, A, B))
    owner.client.subscribe(f"{work}/jobs/+/{OWNER}", qos=1)
    a.client.subscribe(f"{work}/results/+/{A}", qos=1)
    b.client.subscribe("#", qos=1)  # a hostile member listening to everything it may
    for member in (owner, a, b):
        member.wait_suback()
    sent = [
        (a, f"{work}/jobs/{A}/{OWNER}"),  # delivered to OWNER
        (b, f"{work}/jobs/{A}/{OWNER}"),  # B writing as A: refused
        (owner, f"{work}/results/{OWNER}/{A}"),  # delivered to A
        (b, f"{work}/results/{OWNER}/{A}"),  # B writing as OWNER: refused
    ]
    for counter, (member, topic) in enumerate(sent, start=1):
        raw = seal_mesh_message(
            SECRETS, member.client._client_id.decode()[5:], topic, {"n": counter}, now=time.time(), counter=counter
        )
        member.client.publish(topic, raw, qos=1).wait_for_publish(5)
    assert owner.wait_message().topic == f"{work}/jobs/{A}/{OWNER}"
    assert a.wait_message().topic == f"{work}/results/{OWNER}/{A}"
    for member in (owner, a, b):  # nothing else for anyone: B read neither the job nor the result
        with pytest.raises(queue.Empty):
            member.wait_message(timeout=0.3)


def _admit(connect) -> bool:
    try:
        probe = connect()
        return not probe.wait_connack(timeout=2).is_failure
    except (ssl.SSLError, OSError, queue.Empty):
        return False


def test_connections_are_bounded_and_the_members_inside_keep_working(broker, clients, units):
    receiver = _member(clients, broker, units(B))
    receiver.subscribe(f"{PRESENCE}/+")
    hoarder = units(C)  # a member that opens connection after connection
    admitted = 1
    while admitted <= MAX_CONNECTIONS + 8 and _admit(
        lambda name=f"hoard-{admitted}": clients(broker.port, identity=hoarder, client_id=name)
    ):
        admitted += 1
    # mosquitto counts a connection until it has noticed it closed (start_broker's readiness probe, at most one).
    assert MAX_CONNECTIONS <= admitted <= MAX_CONNECTIONS + 1
    # The member connected before the flood is still served.
    topic, raw = _seal(B, {"state": "online"}, 1)
    receiver.client.publish(topic, raw, qos=1).wait_for_publish(5)
    assert receiver.wait_message().topic == topic


def test_the_broker_listens_on_its_listener_address_only(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=1):
        pass
    with pytest.raises(OSError):  # 127.0.0.2 reaches this machine too, but nothing listens there
        socket.create_connection(("127.0.0.2", broker.port), timeout=1).close()


def test_a_restarted_broker_takes_members_back(broker, clients, units):
    receiver = _member(clients, broker, units(B))
    receiver.subscribe(f"{PRESENCE}/+")
    sender = _member(clients, broker, units(A))
    first_pid = broker.process().pid
    broker.restart()
    assert broker.process().pid != first_pid and broker.process().poll() is None
    assert not receiver.wait_connack().is_failure and not sender.wait_connack().is_failure
    receiver.wait_suback()  # resubscribed
    topic, raw = _seal(A, {"state": "back"}, 2)
    sender.client.publish(topic, raw, qos=1).wait_for_publish(5)
    assert open_mesh_message(SECRETS, topic, receiver.wait_message().payload, {})[0].payload == {"state": "back"}


def test_a_dead_broker_is_restarted(broker, clients, units):
    broker.process().kill()
    broker.process().wait()
    broker.restart()  # what the agent does when it sees the process gone
    _member(clients, broker, units(A))


def test_retained_presence_does_not_outlive_the_broker(broker, clients, units):
    sender = _member(clients, broker, units(A))
    topic, raw = _seal(A, {}, 1)
    sender.client.publish(topic, raw, qos=1, retain=True).wait_for_publish(5)
    sender.close()
    broker.restart()
    late = _member(clients, broker, units(C))
    late.subscribe(f"{PRESENCE}/+")
    with pytest.raises(queue.Empty):  # persistence is off: units republish presence when they connect
        late.wait_message(timeout=0.3)


def test_joining_another_mesh_takes_new_certificates_and_a_restart(broker, clients, units, tmp_path):
    ensure_unit_identity(tmp_path / "owner", OWNER, OTHER_KEY)  # what joining does to the unit's identity
    broker.restart()
    _member(clients, broker, units(C, OTHER_KEY))
    _assert_never_admitted(
        lambda: clients(broker.port, identity=units(A), ca_path=derive_mesh_authority_path(tmp_path))
    )


def derive_mesh_authority_path(tmp_path: Path) -> Path:
    """The old mesh's CA as a file: a unit still on the old key trusts only that one."""
    path = tmp_path / "old-ca.crt"
    path.write_bytes(derive_mesh_authority(KEY).certificate_pem)
    return path


def test_a_will_sealed_at_connect_reaches_members_when_a_unit_dies(broker, clients, units):
    receiver = _member(clients, broker, units(B))
    receiver.subscribe(f"{PRESENCE}/+")
    identity = units(A)
    script = (
        "import sys, time\n"
        "from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity\n"
        "from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets\n"
        "from appliance.mesh.key.parse_mesh_key import parse_mesh_key\n"
        "from appliance.mesh.messages.seal_mesh_message import seal_mesh_message\n"
        "from tests.mesh.mqtt_test_client import connect_test_client\n"
        "key = parse_mesh_key(sys.argv[1])\n"
        "secrets = derive_mesh_secrets(key)\n"
        "identity = ensure_unit_identity(sys.argv[4], sys.argv[5], key)\n"
        "topic = sys.argv[3]\n"
        "will = seal_mesh_message(secrets, sys.argv[5], topic, {'state': 'offline'}, now=time.time(),"
        " counter=10, will=True)\n"
        "client = connect_test_client(int(sys.argv[2]), identity=identity, client_id='unit-a',"
        " will=(topic, will, 1, True))\n"
        "assert not client.wait_connack().is_failure\n"
        "print('connected', flush=True)\n"
        "time.sleep(60)\n"
    )
    key_text = create_mesh_key(bytes(range(32)))
    unit = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            key_text,
            str(broker.port),
            f"{PRESENCE}/{A}",
            str(identity.key_path.parent.parent.parent),
            A,
        ],
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
    state = {A: 10**12}  # we heard newer live messages from the unit: the will still counts
    opened, new_state = open_mesh_message(SECRETS, message.topic, message.payload, state)
    assert (opened.sender, opened.payload, opened.will, new_state) == (A, {"state": "offline"}, True, state)


def test_a_config_mosquitto_rejects_fails_with_its_own_words(tmp_path):
    conf_path = _write_conf(tmp_path, _free_port(), tls_dir=tmp_path / "missing")
    with pytest.raises(BrokerError) as info:
        start_broker(conf_path)
    assert "exited with status" in info.value.message and "missing" in info.value.message


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
        tmp_path, _free_port(), log_path=tmp_path / "mosquitto.log", acl_file=tmp_path / "missing.acl"
    )
    with pytest.raises(BrokerError) as info:
        start_broker(conf_path)
    assert "missing.acl" in info.value.message and "earlier run" not in info.value.message


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.mark.skipif(os.geteuid() != 0 or not _has_user("mosquitto"), reason="needs root and a mosquitto user")
def test_started_as_root_the_broker_drops_to_its_account_and_then_reads_key_and_acl():
    # The image's way: systemd starts mosquitto as root, and mosquitto 2.0 switches to its account before it
    # loads the TLS key and the ACL: that account must own them (the key stays 0600).
    directory = Path(tempfile.mkdtemp(prefix="iplm-mesh-"))  # tmp_path's parents are closed to others
    try:
        directory.chmod(0o755)
        identity = ensure_unit_identity(directory / "data", OWNER, KEY)
        (directory / "mosquitto.acl").write_text(render_mosquitto_acl())
        account = pwd.getpwnam("mosquitto")
        for path in [directory / "data", directory / "data" / "mesh", *identity.key_path.parent.glob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)
        os.chown(identity.key_path.parent, account.pw_uid, account.pw_gid)
        assert identity.key_path.stat().st_mode & 0o077 == 0
        conf_path = directory / "mosquitto.conf"
        port = _free_port()
        conf_path.write_text(
            render_mosquitto_conf(
                listeners=[("127.0.0.1", port)], tls_dir=identity.key_path.parent, acl_file=directory / "mosquitto.acl"
            )
        )
        broker = start_broker(conf_path)
        try:
            status = Path(f"/proc/{broker.process().pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert int(uid_line.split()[1]) == account.pw_uid
            client = connect_test_client(port, identity=ensure_unit_identity(directory / "a", A, KEY))
            try:
                assert not client.wait_connack().is_failure
            finally:
                client.close()
        finally:
            broker.stop()
    finally:
        shutil.rmtree(directory)
