"""A phone joins the unit's network: DHCP, DNS, probes, the portal, a streamed chat reply — all for real.

The unit and the phone are network namespaces joined by a veth pair (the "Wi-Fi"). The unit runs the
network setup `iplm network apply` makes (address, nftables), dnsmasq with the rendered config, and
`iplm serve` on port 8080 behind the port-80 redirect. The phone gets its address from busybox's DHCP
client, resolves names through the unit, and runs its probes and a headless Chromium inside its namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from appliance.network.apply_network import apply_network
from appliance.network.plan_network import plan_network
from appliance.network.render_dnsmasq_conf import render_dnsmasq_conf

pytestmark = [pytest.mark.netns, pytest.mark.browser, pytest.mark.engine]

ROOT = Path(__file__).resolve().parents[2]
UNIT, PHONE = "iplm-cap-unit", "iplm-cap-phone"
NODE_ID = "00112233445566aa"
PORTAL = "http://198.18.0.1/"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every platform's probe, and the exact answer it must get once the phone has opened the portal.
PROBES = {
    "android": ("http://connectivitycheck.gstatic.com/generate_204", 204, ""),
    "android-google": ("http://www.google.com/gen_204", 204, ""),
    "android-xiaomi": ("http://connect.rom.miui.com/generate_204", 204, ""),
    "android-huawei": ("http://connectivitycheck.platform.hicloud.com/generate_204", 204, ""),
    "chromeos": ("http://clients3.google.com/generate_204", 204, ""),
    "apple": (
        "http://captive.apple.com/hotspot-detect.html",
        200,
        "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
    ),
    "windows": ("http://www.msftconnecttest.com/connecttest.txt", 200, "Microsoft Connect Test"),
    "windows-ncsi": ("http://www.msftncsi.com/ncsi.txt", 200, "Microsoft NCSI"),
    "firefox": ("http://detectportal.firefox.com/success.txt", 200, "success\n"),
}


_LISTEN_443_1883 = """
import socket, threading, time
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen()
    while True:
        s.accept()[0].close()
for port in (443, 1883):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
time.sleep(3600)
"""


def _ns(name: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", name, *argv], check=True, capture_output=True, text=True, **kwargs)


def _remove_lab() -> None:
    for name in (UNIT, PHONE):
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    shutil.rmtree(f"/etc/netns/{PHONE}", ignore_errors=True)


def _run_on_phone(script: str, timeout: float = 120) -> dict:
    """Run Python on the phone; the script prints one JSON object."""
    result = subprocess.run(
        ["ip", "netns", "exec", PHONE, sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _wait_for_portal(tmp) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                PHONE,
                sys.executable,
                "-c",
                "import urllib.request as u; print(u.urlopen('http://198.18.0.1/healthz', timeout=2).status)",
            ],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "200":
            return
        time.sleep(0.5)
    raise RuntimeError("the portal never answered the phone:\n" + (tmp / "serve.log").read_text())


@pytest.fixture(scope="module")
def joined_phone(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("this test builds network namespaces: run the suite as root (scripts/dev and CI do)")
    _remove_lab()
    tmp = tmp_path_factory.mktemp("captive")
    processes = []
    try:
        for name in (UNIT, PHONE):
            subprocess.run(["ip", "netns", "add", name], check=True)
            _ns(name, "ip", "link", "set", "lo", "up")
        subprocess.run(
            ["ip", "link", "add", "ap0", "netns", UNIT, "type", "veth", "peer", "name", "wlan0", "netns", PHONE],
            check=True,
        )
        plan = plan_network(NODE_ID, ap_interface="ap0")
        apply_network(plan, config_dir=tmp / "etc", netns=UNIT, lease_file=tmp / "leases")
        conf = tmp / "dnsmasq.conf"
        conf.write_text(render_dnsmasq_conf(plan, lease_file=tmp / "leases"))
        processes.append(
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    UNIT,
                    "dnsmasq",
                    "--keep-in-foreground",
                    f"--conf-file={conf}",
                    f"--pid-file={tmp / 'dnsmasq.pid'}",
                ]
            )
        )
        # Listeners the phone must NOT reach: HTTPS (refused by a reset) and the MQTT broker's port.
        # They exist so that a refusal proves the firewall, not an empty port.
        processes.append(subprocess.Popen(["ip", "netns", "exec", UNIT, sys.executable, "-c", _LISTEN_443_1883]))
        log = open(tmp / "serve.log", "w")
        serve = [
            "ip",
            "netns",
            "exec",
            UNIT,
            sys.executable,
            "-m",
            "appliance.cli.main",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--portal-url",
            PORTAL,
            "--data-dir",
            str(tmp / "data"),
            "--n-ctx",
            "2048",
            "--max-tokens",
            "48",
        ]
        processes.append(subprocess.Popen(serve, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        # The phone: DHCP through busybox's client; its script sets the address and the DNS server.
        Path(f"/etc/netns/{PHONE}").mkdir(parents=True, exist_ok=True)
        Path(f"/etc/netns/{PHONE}/resolv.conf").write_text("")
        script = tmp / "udhcpc.sh"
        script.write_text(
            textwrap.dedent("""\
            #!/bin/sh
            case "$1" in
              bound|renew)
                ip addr flush dev "$interface"
                ip addr add "$ip/${mask:-24}" dev "$interface"
                for r in $router; do ip route replace default via "$r" dev "$interface"; done
                : > /etc/resolv.conf
                for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
                echo "$ip $router $dns" > "$(dirname "$0")/lease.txt" ;;
            esac
            """)
        )
        script.chmod(0o755)
        _ns(PHONE, "ip", "link", "set", "wlan0", "up")
        _ns(PHONE, "busybox", "udhcpc", "-i", "wlan0", "-n", "-q", "-f", "-t", "10", "-s", str(script), timeout=60)
        _wait_for_portal(tmp)

        def restart_portal():
            # The portal keeps "who opened it" in memory only: a restart makes every phone new again.
            processes[-1].terminate()
            processes[-1].wait(timeout=15)
            processes.append(subprocess.Popen(serve, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
            _wait_for_portal(tmp)

        yield {"lease": (tmp / "lease.txt").read_text().split(), "tmp": tmp, "restart_portal": restart_portal}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        _remove_lab()


def test_dhcp_gives_the_phone_an_address_with_the_unit_as_router_and_dns(joined_phone):
    address, router, dns = joined_phone["lease"]
    assert address.startswith("198.18.0.") and address != "198.18.0.1"
    assert router == "198.18.0.1" and dns == "198.18.0.1"
    answered = _run_on_phone("""
        import json, socket
        names = ["connectivitycheck.gstatic.com", "captive.apple.com", "example.org", "dns.msftncsi.com"]
        print(json.dumps({n: socket.gethostbyname(n) for n in names}))
    """)
    assert answered == {
        "connectivitycheck.gstatic.com": "198.18.0.1",
        "captive.apple.com": "198.18.0.1",
        "example.org": "198.18.0.1",
        "dns.msftncsi.com": "131.107.255.255",
    }


def test_the_unit_itself_reaches_its_443_and_1883_listeners(joined_phone):
    # The control for the firewall checks below: the ports are open on the unit, for the unit.
    _ns(
        UNIT,
        sys.executable,
        "-c",
        "import socket\nfor p in (443, 1883): socket.create_connection(('198.18.0.1', p), 3)",
    )


def test_probes_are_redirected_until_the_portal_opens_then_answered_exactly(joined_phone):
    results = _run_on_phone(f"""
        import http.client, json, socket, time, urllib.parse
        probes = {json.dumps(PROBES)}

        def fetch(url, method="GET"):
            parts = urllib.parse.urlsplit(url)
            connection = http.client.HTTPConnection(parts.hostname, 80, timeout=10)
            connection.request(method, parts.path, headers={{"Host": parts.hostname}})
            response = connection.getresponse()
            return response.status, response.getheader("Location"), response.read().decode()

        before = {{name: fetch(url) for name, (url, _, _) in probes.items()}}
        api_before = fetch("http://198.18.0.1/captive-portal/api")
        page = fetch("http://198.18.0.1/")  # the page alone does not count: its script must run
        still = fetch(probes["android"][0])
        opened = fetch("http://198.18.0.1/captive-portal/open", "POST")  # what the page's script reports
        after = {{name: fetch(url) for name, (url, _, _) in probes.items()}}
        api_after = fetch("http://198.18.0.1/captive-portal/api")
        started = time.monotonic()
        try:
            socket.create_connection(("connectivitycheck.gstatic.com", 443), timeout=10).close()
            https = "connected"
        except ConnectionRefusedError:
            https = "refused"
        except OSError as exc:
            https = type(exc).__name__
        https_seconds = time.monotonic() - started
        try:
            socket.create_connection(("198.18.0.1", 1883), timeout=3).close()
            broker = "reachable"
        except OSError:
            broker = "unreachable"
        print(json.dumps({{"before": before, "after": after, "page": page[0], "still": still[:2], "opened": opened[0],
                           "api_before": api_before,
                           "api_after": api_after, "https": https, "https_seconds": https_seconds,
                           "broker": broker}}))
    """)
    for name, (status, location, _) in results["before"].items():
        assert (status, location) == (302, PORTAL), name
    assert results["page"] == 200 and results["still"] == [302, PORTAL]
    assert results["opened"] == 204
    for name, (status, _, body) in results["after"].items():
        assert (status, body) == PROBES[name][1:], name
    assert json.loads(results["api_before"][2])["captive"] is True
    assert json.loads(results["api_after"][2])["captive"] is False
    assert json.loads(results["api_after"][2])["user-portal-url"] == PORTAL
    assert results["https"] == "refused"  # ConnectionRefusedError: a TCP reset, not a time-out (TimeoutError)
    assert results["broker"] == "unreachable"


def test_chromium_on_the_phone_lands_in_the_chat_and_gets_a_streamed_reply(joined_phone):
    joined_phone["restart_portal"]()  # a phone that has not opened the portal yet
    first = _run_on_phone("""
        import http.client, json
        c = http.client.HTTPConnection("connectivitycheck.gstatic.com", 80, timeout=10)
        c.request("GET", "/generate_204")
        r = c.getresponse()
        print(json.dumps({"status": r.status, "location": r.getheader("Location")}))
    """)
    assert first == {"status": 302, "location": PORTAL}
    profile = joined_phone["tmp"] / "phone-profile"
    result = _run_on_phone(
        f"""
        import json
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                {str(profile)!r}, executable_path="/usr/bin/chromium", headless=True, args={CHROMIUM_ARGS!r},
                viewport={{"width": 360, "height": 740}}, is_mobile=True)
            page = context.new_page()
            # What the OS sign-in sheet does: load the probe URL and follow where it leads.
            page.goto("http://connectivitycheck.gstatic.com/generate_204")
            landed = page.url
            page.wait_for_selector("#prompt")
            page.fill("#prompt", "Hi! Who are you?")
            page.click("#send")
            reply = page.locator("#messages .msg.assistant").last
            reply.wait_for(state="attached")
            page.wait_for_selector("#messages .msg.assistant[data-state=done]", timeout=90000)
            text = reply.locator(".content").inner_text()
            # The page ran: from now on the phone's probes are answered "online", so it keeps the Wi-Fi.
            probe = page.request.get("http://connectivitycheck.gstatic.com/generate_204", max_redirects=0)
            print(json.dumps({{"landed": landed, "reply": text, "probe_after": probe.status}}))
            context.close()
    """,
        timeout=180,
    )
    assert result["landed"] == PORTAL
    assert result["reply"].strip()
    assert result["probe_after"] == 204
