"""OWE transition mode's two BSS, and the portal's per-phone connection cap, applied for real in namespaces.

    phone-open (eth0 198.18.0.5/24) ---veth--- unit ap0     \\
                                                              bridge br-ap 198.18.0.1/24
    phone-owe  (eth0 198.18.0.6/24) ---veth--- unit ap0-owe /

The veths stand in for the two BSS that hostapd creates on the radio and adds to the bridge (bridge= in
hostapd.conf); the test adds them to the bridge as hostapd would. The unit gets its network from
apply_network, runs dnsmasq with the rendered config and a stand-in portal on 8080 that keeps every
connection open until the phone closes it. Every namespace and process goes at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from appliance.network.apply_network import apply_network
from appliance.network.plan_network import plan_network
from tests.network.require_site_tools import require_site_tools
from tests.network.start_netns_lab import start_netns_lab
from tests.network.test_captive_rules import PROBE, PY

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

NODE = "0123456789abcdef"
UNIT, PHONE_OPEN, PHONE_OWE = "198.18.0.1", "198.18.0.5", "198.18.0.6"
GREEDY = "198.18.0.7"  # a second address of phone-open with no connections before the cap test
BEYOND = "10.213.99.1"
QUIET_S = 2.0
SETTLE_S = 15.0  # generous: how long a closed connection may take to leave the count
BR_NETFILTER = "net.bridge.bridge-nf-call-iptables"

# The portal stand-in: a greeting at once, an HTTP answer if the phone asks, else the connection is held.
SERVER = """
import socket, sys, threading
def answer(conn):
    with conn:
        here = "%s:%d" % conn.getsockname()
        try:
            conn.sendall(("portal " + here + "\\n").encode())
            if conn.recv(4096):
                conn.sendall(("HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nportal " + here).encode())
        except OSError:
            pass
def serve(port):
    server = socket.create_server(("0.0.0.0", port), backlog=256)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()
for port in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(port),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# argv: source address, host, port, count. Opens `count` connections, prints what became of each (JSON),
# and holds the open ones until stdin closes.
HOLD = """
import json, socket, sys
source, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
held, results = [], []
for _ in range(count):
    try:
        conn = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
        held.append(conn)
        results.append("connected" if conn.recv(256).startswith(b"portal") else "no greeting")
    except OSError as error:
        results.append(type(error).__name__)
print(json.dumps(results), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module", autouse=True)
def _require_tools():
    require_site_tools()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The unit and two phones, one per BSS; the unit's network applied, dnsmasq and the portal running."""
    tmp = tmp_path_factory.mktemp("two-bss")
    with start_netns_lab() as lab:
        unit, phone_open, phone_owe = lab.add("unit"), lab.add("open"), lab.add("owe")
        lab.cable(unit, "ap0", phone_open, "eth0")
        lab.cable(unit, "ap0-owe", phone_owe, "eth0")
        lab.address(phone_open, "eth0", f"{PHONE_OPEN}/24", gateway=UNIT)
        lab.address(phone_owe, "eth0", f"{PHONE_OWE}/24", gateway=UNIT)
        lab.run(phone_open, ["ip", "addr", "add", f"{GREEDY}/24", "dev", "eth0"]).check_returncode()
        # As on a board: Debian does not load br_netfilter, so bridged frames skip the inet hooks. (This
        # kernel has it built in; the isolation test also runs with it on.)
        lab.run(unit, ["sysctl", "-q", "-w", f"{BR_NETFILTER}=0"]).check_returncode()
        plan = plan_network(NODE, ap_interface="ap0", radio_supports_second_ap=True)
        assert plan.owe_interface == "ap0-owe" and plan.phone_interface == "br-ap"

        def apply():
            return apply_network(
                plan, config_dir=tmp / "etc", netns=unit, lease_file=tmp / "run" / "leases", broker_user=None
            )

        assert apply().pending == ("ap0 and ap0-owe join br-ap when hostapd starts the access point",)
        for port in ("ap0", "ap0-owe"):  # what hostapd does with bridge=br-ap
            lab.run(unit, ["ip", "link", "set", port, "master", "br-ap", "up"]).check_returncode()
        settled = apply()
        assert not settled and settled.pending == ()
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
        for ns, port in ((unit, 8080), (phone_owe, 9000)):
            server = lab.spawn(ns, [*PY, SERVER, str(port)], stdout=subprocess.PIPE, text=True)
            assert server.stdout.readline().strip() == "ready"

        def probe(ns, *checks):
            output = lab.run(ns, [*PY, PROBE, json.dumps(checks)]).stdout
            assert dnsmasq.poll() is None, (tmp / "dnsmasq.log").read_text()
            return json.loads(output)

        yield {"probe": probe, "apply": apply, "lab": lab, "plan": plan, "unit": unit}


def _phones(site) -> dict[str, str]:
    prefix = site["lab"].prefix
    return {"open": f"{prefix}open", "owe": f"{prefix}owe"}


def test_phones_on_either_bss_get_the_same_address_plan_dns_and_portal(site):
    for name, ns in _phones(site).items():
        offer, dns, http = site["probe"](
            ns, ["dhcp", "eth0", 10], ["dns", UNIT, "connectivitycheck.gstatic.com", 5], ["http", BEYOND, 80, 3]
        )
        assert offer["result"] == "offer", name
        assert offer["router"] == UNIT and offer["dns"] == UNIT and offer["mask"] == "255.255.255.0", name
        assert offer["captive"] == f"http://{UNIT}/captive-portal/api", name
        assert offer["address"].startswith("198.18.0."), name
        assert dns["answers"] == [UNIT], name
        assert http["result"] == "connected" and http["data"] == f"portal {UNIT}:8080", name


def test_the_admin_ports_stay_invisible_from_the_owe_bss(site):
    (broker,) = site["probe"](_phones(site)["owe"], ["tcp", UNIT, 1883, QUIET_S])
    assert broker["result"] == "TimeoutError"


def _reach_other_phone(site) -> str:
    phones = _phones(site)
    site["lab"].run(phones["open"], ["ip", "neigh", "flush", "all"])
    (outcome,) = site["probe"](phones["open"], ["tcp", PHONE_OWE, 9000, QUIET_S])
    return outcome["result"]


def test_a_phone_on_the_open_bss_cannot_reach_one_on_the_owe_bss(site):
    lab, unit = site["lab"], site["unit"]
    assert _reach_other_phone(site) != "connected"
    try:
        # With br_netfilter on (Docker loads it), bridged frames also meet the inet forward chain: still apart.
        lab.run(unit, ["sysctl", "-q", "-w", f"{BR_NETFILTER}=1"]).check_returncode()
        assert _reach_other_phone(site) != "connected"
        lab.run(unit, ["sysctl", "-q", "-w", f"{BR_NETFILTER}=0"]).check_returncode()
        # The attack works without the bridge table: the phones share one bridge, so the rule is what stops it.
        lab.run(unit, ["nft", "delete", "table", "bridge", "iplm"]).check_returncode()
        deadline = time.monotonic() + SETTLE_S
        while _reach_other_phone(site) != "connected":
            assert time.monotonic() < deadline, "without table bridge iplm the phones should reach each other"
    finally:
        lab.run(unit, ["sysctl", "-q", "-w", f"{BR_NETFILTER}=0"])
        restored = site["apply"]()
    assert "loaded nftables table inet iplm and bridge iplm" in " ".join(restored.changes)
    assert _reach_other_phone(site) != "connected"


def test_one_phone_cannot_hold_more_portal_connections_than_its_cap(site):
    lab, limit = site["lab"], site["plan"].phone_connection_limit
    phones = _phones(site)
    greedy = lab.spawn(
        phones["open"],
        [*PY, HOLD, GREEDY, UNIT, "8080", str(limit + 4)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    results = json.loads(greedy.stdout.readline())
    # The first `limit` are the portal's; the rest are reset at once (a dropped SYN would time out instead).
    assert results == ["connected"] * limit + ["ConnectionRefusedError"] * 4
    # Port 80 arrives redirected to the portal and counts against the same cap.
    via_port_80 = lab.run(phones["open"], [*PY, HOLD, GREEDY, UNIT, "80", "1"], input="")
    assert json.loads(via_port_80.stdout) == ["ConnectionRefusedError"]
    # Meanwhile the other phone, and other addresses, still get answers.
    (other,) = site["probe"](phones["owe"], ["http", UNIT, 80, 3])
    assert other["result"] == "connected" and other["data"] == f"portal {UNIT}:8080"
    (first_address,) = site["probe"](phones["open"], ["http", UNIT, 8080, 3])
    assert first_address["result"] == "connected", "each address has its own count"

    greedy.stdin.close()  # the greedy phone lets go: its connections close
    greedy.wait(timeout=10)
    deadline = time.monotonic() + SETTLE_S
    while True:
        again = lab.run(phones["open"], [*PY, HOLD, GREEDY, UNIT, "8080", "1"], input="")
        if json.loads(again.stdout) == ["connected"]:
            break
        assert time.monotonic() < deadline, f"the cap did not let go after the connections closed: {again.stdout}"
        time.sleep(0.2)
    # The counts live in a set the unit's own apply leaves alone: nothing to change with phones connected.
    assert not site["apply"]()
