"""The AP's rules, applied for real: a phone, a unit and a mesh peer in namespaces of their own.

    phone (eth0 198.18.0.5/24, default route via the unit) ---veth--- unit ap0 198.18.0.1/24
    peer  (eth0 10.213.7.2/24)                             ---veth--- unit me0 10.213.7.1/24

The unit gets its network from apply_network, runs dnsmasq with the rendered config, and a stand-in
portal on 8080 plus listeners on 443, 1883, 22 and 5000 (so that a refused connection is the firewall's doing).
Addresses "beyond the unit" are 10.213.99.1 (nobody has it) and the mesh peer: packets to them never
leave the namespaces. Every namespace and process goes at the end, whatever happens.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from appliance.network.apply_network import apply_network
from appliance.network.network_types import NCSI_ADDRESS
from appliance.network.plan_network import plan_network
from tests.network.require_site_tools import require_site_tools
from tests.network.start_netns_lab import start_netns_lab

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]

PY = [sys.executable, "-I", "-S", "-c"]  # stdlib only: quick to start inside a namespace
NODE = "0123456789abcdef"
UNIT, PHONE, PEER = "198.18.0.1", "198.18.0.5", "10.213.7.2"
UNIT_MESH = "10.213.7.1"
BEYOND = "10.213.99.1"
QUIET_S = 1.0

SERVERS = """
import socket, sys, threading
def serve(port, http):
    server = socket.create_server(("0.0.0.0", port), reuse_port=False)
    while True:
        conn, _ = server.accept()
        with conn:
            here = "%s:%d" % conn.getsockname()
            if http:
                conn.recv(4096)
                conn.sendall(("HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nportal " + here).encode())
            else:
                conn.sendall(("hello " + here).encode())
for spec in sys.argv[1:]:
    port, kind = spec.split(":")
    threading.Thread(target=serve, args=(int(port), kind == "http"), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# argv: one JSON list of [kind, args...]; prints one JSON list of results
PROBE = r"""
import json, socket, struct, sys, time

def tcp(host, port, timeout):
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            data = conn.recv(256).decode()
        return {"result": "connected", "data": data, "seconds": time.monotonic() - start}
    except OSError as error:
        return {"result": type(error).__name__, "seconds": time.monotonic() - start}

def http(host, port, timeout):
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n"
                         b"Connection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        return {"result": "connected", "data": data.decode().split("\r\n\r\n", 1)[-1],
                "seconds": time.monotonic() - start}
    except OSError as error:
        return {"result": type(error).__name__, "seconds": time.monotonic() - start}

def dns(server, name, timeout):
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    query += struct.pack("!HH", 1, 1)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while True:       # dnsmasq may still be starting: ask again until the deadline
            sock.settimeout(0.2)
            sock.sendto(query, (server, 53))
            try:
                reply = sock.recv(4096)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return {"result": "no answer"}
    count = struct.unpack("!H", reply[6:8])[0]
    i = 12
    while reply[i]:
        i += 1 + reply[i]
    i += 5
    answers = []
    for _ in range(count):
        i += 2 if reply[i] & 0xC0 == 0xC0 else len(reply[i:].split(b"\0", 1)[0]) + 1
        rtype, _, _, length = struct.unpack("!HHIH", reply[i:i + 10])
        if rtype == 1:
            answers.append(socket.inet_ntoa(reply[i + 10:i + 14]))
        i += 10 + length
    return {"result": "answered", "rcode": reply[3] & 0x0F, "answers": answers}

def dhcp(ifname, timeout):
    mac = bytes.fromhex(open("/sys/class/net/%s/address" % ifname).read().strip().replace(":", ""))
    xid = 0x1A2B3C4D
    packet = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4),
                         bytes(4), bytes(4), mac.ljust(16, b"\0"), bytes(64), bytes(128))
    packet += b"\x63\x82\x53\x63" + bytes([53, 1, 1, 55, 4, 1, 3, 6, 114, 255])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.bind(("0.0.0.0", 68))
        deadline = time.monotonic() + timeout
        sock.sendto(packet, ("255.255.255.255", 67))
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(4096)
            except OSError:
                return {"result": "no offer"}
            if len(data) >= 240 and data[0] == 2 and struct.unpack("!I", data[4:8])[0] == xid:
                break
    options, i = {}, 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        options[data[i]] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    return {"result": "offer", "type": options[53][0], "address": socket.inet_ntoa(data[16:20]),
            "router": socket.inet_ntoa(options[3][:4]), "dns": socket.inet_ntoa(options[6][:4]),
            "mask": socket.inet_ntoa(options[1]), "captive": options.get(114, b"").decode()}

def ping(host, timeout):
    # ICMP echo over a raw socket (root in the namespace); answered or not
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        body = struct.pack("!BBHHH", 8, 0, 0, 0x77, 1) + b"iplm"
        words = sum(struct.unpack("!%dH" % (len(body) // 2), body))
        checksum = ~((words & 0xFFFF) + (words >> 16)) & 0xFFFF
        sock.sendto(body[:2] + struct.pack("!H", checksum) + body[4:], (host, 0))
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, source = sock.recvfrom(4096)
            except OSError:
                return {"result": "no reply"}
            if source[0] == host and data[20] == 0:
                return {"result": "reply"}

KINDS = {"tcp": tcp, "http": http, "dns": dns, "dhcp": dhcp, "ping": ping}
print(json.dumps([KINDS[kind](*args) for kind, *args in json.loads(sys.argv[1])]))
"""


@pytest.fixture(scope="module", autouse=True)
def _require_tools():
    require_site_tools()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The three namespaces, the unit's network applied, dnsmasq and the servers running."""
    tmp = tmp_path_factory.mktemp("captive")
    with start_netns_lab() as lab:
        unit, phone, peer = lab.add("unit"), lab.add("phone"), lab.add("peer")
        lab.cable(unit, "ap0", phone, "eth0")
        lab.cable(unit, "me0", peer, "eth0")
        lab.address(phone, "eth0", f"{PHONE}/24", gateway=UNIT)
        lab.address(peer, "eth0", f"{PEER}/24")
        plan = plan_network(NODE, ap_interface="ap0", mesh_interface="me0", mesh_address=f"{UNIT_MESH}/24")
        result = apply_network(
            plan, config_dir=tmp / "etc", netns=unit, lease_file=tmp / "run" / "leases", broker_user=None
        )
        assert result.pending == ()
        # Even with forwarding on (a misconfigured image), the forward chain keeps phones in.
        lab.run(unit, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]).check_returncode()
        with (tmp / "dnsmasq.log").open("w") as log:
            dnsmasq = lab.spawn(
                unit,
                [
                    shutil.which("dnsmasq", path="/usr/sbin:/usr/bin"),
                    "--keep-in-foreground",
                    f"--conf-file={tmp / 'etc' / 'dnsmasq.conf'}",
                    "--user=root",
                    f"--pid-file={tmp / 'dnsmasq.pid'}",
                ],
                stdout=log,
                stderr=log,
            )
        servers = lab.spawn(
            unit,
            [*PY, SERVERS, "8080:http", "443:tcp", "1883:tcp", "22:tcp", "5000:tcp"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert servers.stdout.readline().strip() == "ready"
        peer_server = lab.spawn(peer, [*PY, SERVERS, "9000:tcp"], stdout=subprocess.PIPE, text=True)
        assert peer_server.stdout.readline().strip() == "ready"
        # The peer may answer the phone, so that only the unit's rules can keep them apart.
        lab.run(peer, ["ip", "route", "add", "198.18.0.0/24", "via", UNIT_MESH]).check_returncode()

        def probe(ns, *checks):
            output = lab.run(ns, [*PY, PROBE, json.dumps(checks)]).stdout
            assert dnsmasq.poll() is None, (tmp / "dnsmasq.log").read_text()
            return json.loads(output)

        yield {"probe": probe, "unit": unit, "phone": phone, "peer": peer, "lab": lab}


def test_http_to_the_unit_or_any_address_reaches_the_portal(site):
    at_unit, at_beyond, direct = site["probe"](
        site["phone"], ["http", UNIT, 80, 2], ["http", BEYOND, 80, 2], ["http", UNIT, 8080, 2]
    )
    assert at_unit["result"] == "connected" and at_unit["data"] == f"portal {UNIT}:8080"
    assert at_beyond["result"] == "connected" and at_beyond["data"] == f"portal {UNIT}:8080"
    assert direct["result"] == "connected"


def test_https_is_refused_at_once_with_a_reset(site):
    to_unit, to_beyond = site["probe"](site["phone"], ["tcp", UNIT, 443, 3], ["tcp", BEYOND, 443, 3])
    for outcome in (to_unit, to_beyond):
        # ConnectionRefusedError is the reset itself; a dropped SYN would end in TimeoutError instead.
        assert outcome["result"] == "ConnectionRefusedError", outcome


def test_the_broker_and_admin_ports_are_invisible_to_phones(site):
    broker, ssh = site["probe"](site["phone"], ["tcp", UNIT, 1883, QUIET_S], ["tcp", UNIT, 22, QUIET_S])
    assert broker["result"] == "TimeoutError" and ssh["result"] == "TimeoutError"


def test_other_services_of_the_unit_are_refused_at_once(site):
    (other,) = site["probe"](site["phone"], ["tcp", UNIT, 5000, 3])
    assert other["result"] == "ConnectionRefusedError"


def test_phones_reach_nothing_beyond_the_unit(site):
    tcp, icmp = site["probe"](site["phone"], ["tcp", PEER, 9000, 2], ["ping", PEER, QUIET_S])
    assert tcp["result"] == "ConnectionRefusedError", "the peer's server must never answer a phone"
    assert icmp["result"] == "no reply"


def test_every_name_resolves_to_the_unit_and_ncsi_gets_its_answer(site):
    gstatic, apple, ncsi, hard_coded = site["probe"](
        site["phone"],
        ["dns", UNIT, "connectivitycheck.gstatic.com", 5],
        ["dns", UNIT, "captive.apple.com", 5],
        ["dns", UNIT, "dns.msftncsi.com", 5],
        ["dns", BEYOND, "example.org", 5],
    )
    assert gstatic["answers"] == [UNIT] and apple["answers"] == [UNIT]
    assert ncsi["answers"] == [str(NCSI_ADDRESS)]
    assert hard_coded["answers"] == [UNIT], "a phone's own resolver is answered by the unit"


def test_dhcp_offers_the_unit_as_router_and_dns_and_the_captive_api(site):
    (offer,) = site["probe"](site["phone"], ["dhcp", "eth0", 10])
    assert offer["result"] == "offer" and offer["type"] == 2
    assert offer["router"] == UNIT and offer["dns"] == UNIT and offer["mask"] == "255.255.255.0"
    assert offer["captive"] == f"http://{UNIT}/captive-portal/api"
    last = int(offer["address"].rsplit(".", 1)[1])
    assert offer["address"].startswith("198.18.0.") and 10 <= last <= 250


def test_the_mesh_link_is_untouched_by_the_ap_rules(site):
    broker, ssh, http = site["probe"](
        site["peer"], ["tcp", UNIT_MESH, 1883, 2], ["tcp", UNIT_MESH, 22, 2], ["tcp", UNIT_MESH, 80, 2]
    )
    assert broker["result"] == "connected" and broker["data"] == f"hello {UNIT_MESH}:1883"
    assert ssh["result"] == "connected"
    # No redirect on the mesh: port 80 there is just a closed port.
    assert http["result"] == "ConnectionRefusedError"


HOLD = """
import json, socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held, results = [], []
for _ in range(count):
    try:
        conn = socket.create_connection((host, port), timeout=5)
        held.append(conn)
        results.append("connected" if conn.recv(256).startswith(b"hello") else "no greeting")
    except OSError as error:
        results.append(type(error).__name__)
print(json.dumps(results), flush=True)
"""


def test_one_address_on_the_mesh_link_holds_at_most_8_broker_connections(site):
    # mosquitto's own connection limit miscounts after failed TLS handshakes (eclipse-mosquitto#1460): the
    # firewall's count per address is what holds. Held open together, the ninth and later are reset at once.
    output = site["lab"].run(site["peer"], [*PY, HOLD, UNIT_MESH, "1883", "12"]).stdout
    assert json.loads(output) == ["connected"] * 8 + ["ConnectionRefusedError"] * 4
