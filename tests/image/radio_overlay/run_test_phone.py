"""Test image only: a phone joins the unit's simulated access point, lands in the chat, and goes online.

mac80211_hwsim made two radios; the unit's iplm-network took the first. This moves the second into a
network namespace, joins the unit's Wi-Fi with wpa_supplicant (Enhanced Open), takes a DHCP lease from the
unit's dnsmasq, and then does what a phone does: probe, get redirected, open the chat, send a message,
probe again. One line `IPLM-TEST-PHONE {json}` on the console tells the test what happened.
"""

import http.client
import json
import socket
import subprocess
import time
from pathlib import Path

PROBE = ("connectivitycheck.gstatic.com", "/generate_204")
result: dict = {}


def run(*argv: str, timeout: float = 60) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True).stdout


def on_phone(*argv: str, timeout: float = 60) -> str:
    return run("ip", "netns", "exec", "phone", *argv, timeout=timeout)


def fetch(host: str, path: str, method: str = "GET", body: dict | None = None, timeout: float = 30):
    # As the phone: in its namespace, through its DNS (the unit's dnsmasq answers every name with the unit).
    script = (
        "import http.client, json, sys\n"
        f"c = http.client.HTTPConnection({host!r}, 80, timeout={timeout})\n"
        f"c.request({method!r}, {path!r}, body={json.dumps(json.dumps(body)) if body else None}, "
        "headers={'Content-Type': 'application/json'})\n"
        "r = c.getresponse()\n"
        "print(json.dumps([r.status, r.getheader('Location'), r.read().decode(errors='replace')[:2000]]))\n"
    )
    return json.loads(on_phone("python3.11", "-c", script, timeout=timeout + 10))


def wait_for(check, seconds: float, step: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (subprocess.SubprocessError, OSError, ValueError):
            pass
        time.sleep(step)
    return False


def fetch_local(path: str) -> int:
    # From the unit itself (the root namespace), not as the phone.
    connection = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    connection.request("GET", path)
    return connection.getresponse().status


def _check_completed(device: str, seconds: int) -> bool:
    # One loop inside the namespace: a poll from here costs seconds of emulated Python each.
    waited = subprocess.run(
        ["ip", "netns", "exec", "phone", "sh", "-c",
         f"for i in $(seq {seconds * 2}); do wpa_cli -p /run/iplm-test-phone -i {device} status"
         " | grep -qx wpa_state=COMPLETED && exit 0; sleep 0.5; done; exit 1"],
        capture_output=True, timeout=seconds + 120,
    )  # fmt: skip
    return waited.returncode == 0


def _join(device: str) -> bool:
    """Connected, and still connected 15 s later (a handshake restarted by a late retry ends in a drop)."""
    if not _check_completed(device, 90):
        return False
    time.sleep(15)
    return _check_completed(device, 1)


def main() -> None:
    ap = Path("/run/iplm/ap-interface").read_text().strip()
    unit_phy = Path(f"/sys/class/net/{ap}/phy80211/name").read_text().strip()
    result["ap_interface"] = ap
    result["hostapd_up"] = wait_for(lambda: "type AP" in run("iw", "dev", ap, "info"), 180)
    phones = sorted(p.name for p in Path("/sys/class/ieee80211").iterdir() if p.name != unit_phy)
    run("ip", "netns", "add", "phone")
    Path("/etc/netns/phone").mkdir(parents=True, exist_ok=True)
    Path("/etc/netns/phone/resolv.conf").write_text("")
    run("iw", "phy", phones[-1], "set", "netns", "name", "phone")
    device = next(name for name in on_phone("ls", "/sys/class/net").split() if name != "lo")
    ssid = socket.gethostname()  # iplm-XXXX: the unit's Wi-Fi is named like the unit
    Path("/run/iplm-test-phone.conf").write_text(
        f'ctrl_interface=/run/iplm-test-phone\nnetwork={{\n ssid="{ssid}"\n key_mgmt=OWE\n ieee80211w=2\n}}\n'
    )
    on_phone("ip", "link", "set", device, "up")
    # Join once the unit is idle: under QEMU's software CPU a unit still starting answers the association
    # late, the phone asks again, and the repeated request restarts the handshake it had just finished.
    result["portal_up"] = wait_for(lambda: fetch_local("/healthz") == 200, 900, step=3)
    on_phone("wpa_supplicant", "-B", "-i", device, "-D", "nl80211", "-c", "/run/iplm-test-phone.conf",
             "-f", "/run/iplm-test-phone-wpa.log")  # fmt: skip

    result["join_attempts"] = 0
    for _ in range(3):
        result["join_attempts"] += 1
        if _join(device):
            break
        for command in ("disconnect", "reconnect"):  # from any state, a fresh association
            on_phone("wpa_cli", "-p", "/run/iplm-test-phone", "-i", device, command)
    result["joined"] = _check_completed(device, 1)
    text = on_phone("wpa_cli", "-p", "/run/iplm-test-phone", "-i", device, "status")
    joined = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    result["wifi"] = {key: joined.get(key) for key in ("wpa_state", "ssid", "key_mgmt", "pairwise_cipher", "pmf")}
    on_phone("busybox", "udhcpc", "-i", device, "-n", "-q", "-f", "-t", "10",
             "-s", "/usr/local/lib/iplm-test/udhcpc.sh", timeout=90)  # fmt: skip
    result["lease"] = Path("/run/iplm-test-phone-lease").read_text().split()
    result["probe_before"] = fetch(*PROBE)[:2]
    result["page"] = fetch("198.18.0.1", "/")[0]
    result["opened"] = fetch("198.18.0.1", "/captive-portal/open", "POST")[0]
    chat = fetch(
        "198.18.0.1",
        "/v1/chat/completions",
        "POST",
        {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4, "temperature": 0},
        timeout=900,
    )
    result["chat_status"] = chat[0]
    result["reply"] = json.loads(chat[2])["choices"][0]["message"]["content"] if chat[0] == 200 else chat[2]
    result["probe_after"] = fetch(*PROBE)[:1]


try:
    main()
except Exception as exc:  # the test reads whatever got this far, and why it stopped
    result["error"] = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, subprocess.CalledProcessError):
        result["stderr"] = (exc.stderr or "")[-800:]
    log = Path("/run/iplm-test-phone-wpa.log")
    if log.exists():
        result["wpa_supplicant"] = log.read_text(errors="replace").splitlines()[-30:]
print("IPLM-TEST-PHONE " + json.dumps(result), flush=True)
