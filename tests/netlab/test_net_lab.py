"""The network lab itself: units reach each other over the bridge and nothing else, shaping, cuts, cleanup.

All traffic stays on loopback and inside the lab's namespaces (10.213.0.0/24); nothing is sent elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.netlab.start_net_lab import start_net_lab

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]

PY = [sys.executable, "-I", "-S", "-c"]  # stdlib only: quick to start inside a namespace

ECHO_SERVER = """
import socket, sys, threading
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""

# argv: timeout host:port...; prints one line per target: "ok HOST:PORT" or "fail HOST:PORT ErrorName"
PROBE = """
import socket, sys
for target in sys.argv[2:]:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=float(sys.argv[1])) as conn:
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping"
        print("ok", target, flush=True)
    except OSError as error:
        print("fail", target, type(error).__name__, flush=True)
"""

# one long-lived connection: connects, then echoes each stdin line through the server
HOLD = """
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print("connected", flush=True)
for line in sys.stdin:
    conn.sendall(line.encode())
    print(conn.recv(1024).decode().strip(), flush=True)
"""

SINK = """
import socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        count = 0
        while data := conn.recv(1 << 20):
            count += len(data)
        conn.sendall(str(count).encode())
"""

# argv: host port bytes; prints "BYTES_RECEIVED SECONDS" (the sink answers only after it has read everything)
SEND = """
import socket, sys, time
total = int(sys.argv[3])
start = time.monotonic()
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as conn:
    chunk = bytes(1 << 16)
    for _ in range(total // len(chunk)):
        conn.sendall(chunk)
    conn.shutdown(socket.SHUT_WR)
    print(conn.recv(64).decode(), time.monotonic() - start, flush=True)
"""

MDNS_RECEIVER = """
import socket, sys
group, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("", port))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("0.0.0.0"))
sock.settimeout(5)
print("ready", flush=True)
try:
    data, (source, _) = sock.recvfrom(2048)
    print("got", source, data.decode(), flush=True)
except OSError as error:
    print("none", type(error).__name__, flush=True)
"""

# no IP_MULTICAST_IF: like a plain sender it relies on the unit's multicast route
MDNS_SENDER = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
for _ in range(10):
    sock.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.05)
"""

UDP_COUNTER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", int(sys.argv[1])))
sock.settimeout(1.0)
print("ready", flush=True)
count = 0
try:
    while True:
        sock.recv(2048)
        count += 1
except TimeoutError:
    print(count, flush=True)
"""

UDP_BLAST = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    sock.sendto(bytes(100), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.0005)
"""


@pytest.fixture(scope="module", autouse=True)
def _require_root():
    if os.geteuid() != 0:
        pytest.fail(
            "tests/netlab needs root: it creates network namespaces, veths, a bridge and tc qdiscs "
            "(run as root, or deselect with -m 'not netns')",
            pytrace=False,
        )
    missing = [tool for tool in ("ip", "tc", "nft") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"tests/netlab needs iproute2 and nftables: {', '.join(missing)} not found", pytrace=False)


@pytest.fixture(scope="module")
def lab(_require_root):
    with start_net_lab(units=3, prefix="iplm-lab") as lab:
        yield lab


@pytest.fixture
def serve(lab):
    """Start a server script in a unit and wait for its 'ready' line; the servers die after the test."""
    processes = []

    def _serve(i: int, script: str, *args) -> subprocess.Popen:
        process = lab.run(i, [*PY, script, *map(str, args)], stdout=subprocess.PIPE, text=True)
        processes.append(process)
        line = process.stdout.readline().strip()
        assert line == "ready", f"server in unit {i} did not start: {line!r}"
        return process

    yield _serve
    for process in processes:
        process.kill()
        process.wait()
        process.stdout.close()


def _probe(lab, i: int, *targets: str, timeout: float = 2.0) -> dict:
    output = lab.check_output(i, [*PY, PROBE, str(timeout), *targets])
    return {words[1]: words[0] for words in map(str.split, output.splitlines())}


def _send(lab, i: int, host: str, port: int, total: int) -> tuple:
    received, seconds = lab.check_output(i, [*PY, SEND, host, str(port), str(total)]).split()
    return int(received), float(seconds)


def _netns_names() -> set:
    return {
        line.split()[0]
        for line in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    }


def _root_links() -> set:
    output = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip() for line in output.splitlines()}


def test_units_are_namespaces_on_the_lab_subnet_only(lab):
    assert [(u.name, u.address, u.interface) for u in lab.units] == [
        (f"iplm-lab-u{i}", f"10.213.0.{10 + i}", "eth0") for i in range(3)
    ]
    assert {u.name for u in lab.units} | {lab.hub} <= _netns_names()
    assert not any(name.startswith("iplm-lab") for name in _root_links()), "the root namespace stays untouched"
    routes = lab.check_output(0, ["ip", "route"])
    assert "default" not in routes, "a unit must have no way out of the lab"
    assert "10.213.0.0/24 dev eth0" in routes and "224.0.0.0/4 dev eth0" in routes


def test_units_talk_tcp_to_each_other(lab, serve):
    for unit in lab.units:
        serve(unit.index, ECHO_SERVER, unit.address, 7100)
    for unit in lab.units:
        others = [f"{other.address}:7100" for other in lab.units if other is not unit]
        assert _probe(lab, unit.index, *others) == dict.fromkeys(others, "ok")


def test_loopback_is_separate_from_the_root_namespace(lab, serve):
    # root -> unit: a root listener on 127.0.0.1 is invisible inside a unit
    with socket.create_server(("127.0.0.1", 0)) as root_server:
        root_port = root_server.getsockname()[1]
        assert _probe(lab, 0, f"127.0.0.1:{root_port}") == {f"127.0.0.1:{root_port}": "fail"}
    # unit -> root: hold the port in the root namespace (bound, not listening) so nothing else answers there
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        serve(0, ECHO_SERVER, "127.0.0.1", port)
        assert _probe(lab, 0, f"127.0.0.1:{port}") == {f"127.0.0.1:{port}": "ok"}, "lo is up inside a unit"
        assert _probe(lab, 1, f"127.0.0.1:{port}") == {f"127.0.0.1:{port}": "fail"}, "units share no loopback"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_mdns_multicast_reaches_the_other_units(lab):
    receivers = [
        lab.run(i, [*PY, MDNS_RECEIVER, "224.0.0.251", "5353"], stdout=subprocess.PIPE, text=True) for i in (1, 2)
    ]
    try:
        assert [r.stdout.readline().strip() for r in receivers] == ["ready", "ready"]
        lab.check_output(0, [*PY, MDNS_SENDER, "224.0.0.251", "5353", "hello-mesh"])
        assert [r.stdout.readline().split() for r in receivers] == [["got", "10.213.0.10", "hello-mesh"]] * 2
    finally:
        for receiver in receivers:
            receiver.kill()
            receiver.wait()
            receiver.stdout.close()


def test_limit_slows_the_link_both_ways(lab, serve):
    serve(0, SINK, 7200)
    serve(1, SINK, 7200)
    total = 2 << 20
    lab.limit(0, rate="8mbit")  # 2 MB = 16 Mbit: about 2 s at 8 Mbit/s
    try:
        uploaded, upload = _send(lab, 0, lab.units[1].address, 7200, total)
        downloaded, download = _send(lab, 1, lab.units[0].address, 7200, total)
    finally:
        lab.unlimit(0)
    free = _send(lab, 0, lab.units[1].address, 7200, total)[1]
    assert uploaded == downloaded == total
    assert upload >= 1.5, f"egress of the limited unit not shaped: {upload:.2f} s"
    assert download >= 1.5, f"ingress of the limited unit not shaped: {download:.2f} s"
    assert free < 1.0, f"unlimit did not lift the limit: {free:.2f} s"


def test_limit_loss_drops_packets(lab, serve):
    counter = serve(1, UDP_COUNTER, 7400)
    lab.limit(1, rate=None, loss=30)
    try:
        lab.check_output(0, [*PY, UDP_BLAST, lab.units[1].address, "7400", "400"])
        received = int(counter.stdout.readline())
    finally:
        lab.unlimit(1)
    assert 160 <= received <= 360, f"30% loss let {received} of 400 datagrams through"
    assert (
        "drop"
        not in subprocess.run(
            ["ip", "netns", "exec", lab.hub, "nft", "list", "ruleset"], capture_output=True, text=True, check=True
        ).stdout
    )


def test_limit_delay_adds_to_the_round_trip(lab, serve):
    serve(1, ECHO_SERVER, lab.units[1].address, 7500)
    try:
        lab.limit(0, rate=None, delay="100ms")
    except RuntimeError as error:
        if "netem" in str(error):
            pytest.skip(f"kernel without netem: {error}")
        raise
    try:
        start = time.monotonic()
        assert _probe(lab, 0, f"{lab.units[1].address}:7500") == {f"{lab.units[1].address}:7500": "ok"}
        elapsed = time.monotonic() - start
    finally:
        lab.unlimit(0)
    assert elapsed >= 0.35, f"100 ms each way should cost >= 2 round trips of 200 ms: {elapsed:.2f} s"


def test_cut_breaks_the_link_and_restore_brings_it_back(lab, serve):
    for i in (0, 1):
        serve(i, ECHO_SERVER, lab.units[i].address, 7300)
    u0, u1 = (f"{lab.units[i].address}:7300" for i in (0, 1))
    hold = lab.run(
        0, [*PY, HOLD, lab.units[1].address, "7300"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert hold.stdout.readline().strip() == "connected"
        lab.cut(1)
        assert "NO-CARRIER" in lab.check_output(1, ["ip", "link", "show", "eth0"]), "the unit sees a pulled cable"
        probes = [
            lab.run(i, [*PY, PROBE, "1", target], stdout=subprocess.PIPE, text=True)
            for i, target in ((0, u1), (2, u1), (1, u0))
        ]
        outputs = [probe.communicate(timeout=10)[0].split()[0] for probe in probes]
        assert outputs == ["fail"] * 3
        lab.restore(1)
        deadline = time.monotonic() + 5
        while _probe(lab, 0, u1, timeout=1) != {u1: "ok"}:
            assert time.monotonic() < deadline, "restore did not bring the link back"
        assert _probe(lab, 1, u0) == {u0: "ok"}
        # a short cut is a cable, not a crash: the connection opened before it still works
        hold.stdin.write("still-here\n")
        hold.stdin.flush()
        assert hold.stdout.readline().strip() == "still-here"
    finally:
        lab.restore(1)
        hold.kill()
        hold.communicate()


def test_add_unit_joins_the_lan(lab, serve):
    index = lab.add_unit()
    unit = lab.units[index]
    assert (index, unit.name, unit.address) == (3, "iplm-lab-u3", "10.213.0.13")
    serve(0, ECHO_SERVER, lab.units[0].address, 7600)
    serve(index, ECHO_SERVER, unit.address, 7600)
    assert _probe(lab, index, f"{lab.units[0].address}:7600") == {f"{lab.units[0].address}:7600": "ok"}
    assert _probe(lab, 0, f"{unit.address}:7600") == {f"{unit.address}:7600": "ok"}


def test_stop_removes_everything_even_after_a_failure(_require_root):
    links_before = _root_links()
    # leftovers of a crashed run: a namespace with a process still inside it
    subprocess.run(["ip", "netns", "add", "iplm-labc-u7"], check=True)
    stale = subprocess.Popen(["ip", "netns", "exec", "iplm-labc-u7", "sleep", "60"])
    started = []
    try:
        with pytest.raises(RuntimeError, match="a test failed"), start_net_lab(units=2, prefix="iplm-labc") as lab:
            assert stale.wait(timeout=5) is not None, "the stale namespace's process was killed"
            assert "iplm-labc-u7" not in _netns_names()
            started.append(lab.run(0, ["sleep", "60"]))
            lab.add_unit()
            lab.limit(2, rate="1mbit", loss=1)
            raise RuntimeError("a test failed")
        assert started[0].poll() is not None, "processes started in the lab are killed"
        assert not {name for name in _netns_names() if name.startswith("iplm-labc-")}
        assert _root_links() == links_before
    finally:
        if stale.poll() is None:
            stale.kill()
        stale.wait()
        if "iplm-labc-u7" in _netns_names():
            subprocess.run(["ip", "netns", "del", "iplm-labc-u7"])
