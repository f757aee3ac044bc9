"""Test image only: a second unit forms the 802.11s mesh link with this one, under batman-adv.

mac80211_hwsim made three radios: the unit's (access point and mesh point), the test phone's, and this
second unit's. The owner puts the unit in a mesh on its admin page (the PIN from the boot partition); that
starts iplm-mesh-link (wpa_supplicant on the unit's mesh point). The second unit lives in a network
namespace with its own data dir: it joins the mesh with the key, runs the same `iplm network apply` on its
radio and wpa_supplicant on its mesh point. Both must then peer (SAE), see each other through batman-adv,
and reach each other's mesh address. One line `IPLM-TEST-PEER {json}` on the console tells the test.
"""

import http.client
import json
import re
import subprocess
import time
from pathlib import Path

PEER_DIR = Path("/var/lib/iplm-test-peer")
result: dict = {}


def run(*argv: str, timeout: float = 120) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True).stdout


def on_peer(*argv: str, timeout: float = 300) -> str:
    return run("ip", "netns", "exec", "peer", *argv, timeout=timeout)


def wait_for(check, seconds: float, step: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (subprocess.SubprocessError, OSError, ValueError):
            pass
        time.sleep(step)
    return False


def ask_unit(method: str, path: str, body: dict | None = None, cookie: str = "") -> tuple[int, list[str], str]:
    # As the owner, on the unit itself (the admin page answers only off the phones' Wi-Fi).
    connection = http.client.HTTPConnection("127.0.0.1", 80, timeout=120)
    headers = {"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})}
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    text = response.read().decode(errors="replace")
    return response.status, response.msg.get_all("Set-Cookie") or [], text  # the admin's cookie, and a phone's


def list_mesh_peers(on=run) -> list[str]:
    # The mesh point's stations whose peering (SAE, then the mesh peering exchange) is established.
    blocks = re.split(r"^Station ", on("iw", "dev", "mesh0", "station", "dump"), flags=re.M)[1:]
    return [block[:17] for block in blocks if re.search(r"mesh plink:\s*ESTAB", block)]


def list_batman_neighbours(on=run) -> str:
    return on("batctl", "meshif", "bat0", "neighbors")


def main() -> None:
    result["mesh_point"] = Path("/run/iplm/mesh-point").read_text().strip()
    # The owner: the PIN from the boot partition, then "create a mesh" on the admin page.
    pin = re.search(r"Admin PIN: (\d+)", Path("/boot/efi/iplm-admin-pin.txt").read_text()).group(1)
    status, cookies, _ = ask_unit("POST", "/api/admin/session", {"pin": pin})
    cookie = "; ".join(value.split(";")[0] for value in cookies)
    result["admin"] = status
    status, _, text = ask_unit("POST", "/api/admin/mesh/create", {}, cookie)
    result["created"] = status
    status, _, text = ask_unit("GET", "/api/admin/mesh/key", cookie=cookie)
    key = json.loads(text)["key"]
    # iplm-mesh-link.path saw the key: wpa_supplicant runs on the unit's mesh point.
    result["link_started"] = wait_for(
        lambda: run("systemctl", "is-active", "iplm-mesh-link.service").strip() == "active", 600
    )
    result["unit_conf"] = Path("/etc/iplm/wpa_supplicant-mesh.conf").exists()

    # The second unit: the last radio left in this namespace, in its own network namespace.
    unit_phy = Path(f"/sys/class/net/{result['mesh_point']}/phy80211/name").read_text().strip()
    phy = next(p.name for p in sorted(Path("/sys/class/ieee80211").iterdir()) if p.name != unit_phy)
    run("ip", "netns", "add", "peer")
    run("iw", "phy", phy, "set", "netns", "name", "peer")
    radio = next(name for name in on_peer("ls", "/sys/class/net").split() if name != "lo")
    iplm = "/opt/iplm/bin/iplm"
    on_peer(iplm, "mesh", "join", key, "--data-dir", str(PEER_DIR))
    applied = on_peer(iplm, "network", "apply", "--ap-interface", radio, "--portal-port", "80",
                      "--data-dir", str(PEER_DIR), "--config-dir", str(PEER_DIR / "etc"),
                      "--serve-env", str(PEER_DIR / "run" / "serve.env"), timeout=600)  # fmt: skip
    result["peer_applied"] = applied.splitlines()[-12:]
    conf = PEER_DIR / "etc" / "wpa_supplicant-mesh.conf"
    # Its own /run/wpa_supplicant, as on its own disk: the rendered config names the same control socket
    # directory as this unit's (`ip netns exec` gives each command its own mount namespace to hold it).
    on_peer("sh", "-c", "mount -t tmpfs peer-run /run/wpa_supplicant && exec wpa_supplicant -B -D nl80211 "
            f"-i mesh0 -c {conf} -f /run/iplm-test-peer-wpa.log")  # fmt: skip

    result["peered"] = wait_for(lambda: len(list_mesh_peers()) == 1 and len(list_mesh_peers(on_peer)) == 1, 300)
    result["peer_mesh_mac"] = on_peer("cat", "/sys/class/net/mesh0/address").strip()
    result["unit_mesh_mac"] = Path("/sys/class/net/mesh0/address").read_text().strip()
    result["unit_sees"] = list_mesh_peers()
    result["peer_sees"] = list_mesh_peers(on_peer)
    # batman-adv: each unit lists the other's mesh point as a neighbour (its originator messages arrived).
    result["batman_neighbours"] = wait_for(
        lambda: (
            result["peer_mesh_mac"] in list_batman_neighbours()
            and result["unit_mesh_mac"] in list_batman_neighbours(on_peer)
        ),
        180,
    )
    result["unit_neighbours"] = list_batman_neighbours()
    # IP over the mesh: the second unit opens this unit's portal at its mesh address (link-local, on bat0).
    address = re.search(r"--mesh-address (\S+)", Path("/run/iplm/serve.env").read_text()).group(1)
    result["unit_mesh_address"] = address
    probe = (
        "import http.client, sys\n"
        f"c = http.client.HTTPConnection({address!r}, 80, timeout=60)\n"
        "c.request('GET', '/healthz')\n"
        "print(c.getresponse().status)\n"
    )
    result["over_the_mesh"] = wait_for(lambda: on_peer("python3.11", "-c", probe).strip() == "200", 180, step=5)


try:
    main()
except Exception as exc:  # the test reads whatever got this far, and why it stopped
    result["error"] = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, subprocess.CalledProcessError):
        result["stderr"] = (exc.stderr or "")[-1500:]
    log = Path("/run/iplm-test-peer-wpa.log")
    if log.exists():
        result["wpa_supplicant"] = log.read_text(errors="replace").splitlines()[-30:]
    try:
        result["link_journal"] = run("journalctl", "-b", "-u", "iplm-mesh-link", "--no-pager", "-n", "30").splitlines()
    except (subprocess.SubprocessError, OSError):
        pass
print("IPLM-TEST-PEER " + json.dumps(result), flush=True)
