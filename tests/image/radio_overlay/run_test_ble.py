"""Test image only: BLE discovery between the unit and a second unit, on BlueZ's virtual controllers.

iplm-test-btvirt.service runs BlueZ's emulator (btvirt) with two controllers on /dev/vhci: hci0 for the
unit, hci1 for the second unit; the emulator carries each one's advertisements to the other's scan, as air
would. The unit's own `iplm serve` (--ble-adapter auto, as shipped) advertises and scans on hci0 since the
owner put it in a mesh (run_test_peer.py). This script is the second unit's BLE side, with the appliance's
own code from /opt/iplm: it scans on hci1 until it hears the unit, then advertises itself on hci1 until the
unit's journal says it heard it. One line `IPLM-TEST-BLE {json}` on the console tells the test.
"""

import asyncio
import json
import subprocess
import threading
import time
from pathlib import Path

# Run by the unit's own Python (/opt/iplm/venv/bin/python3): the shipped appliance code.
from appliance.mesh.discovery.advertise_ble import advertise_ble
from appliance.mesh.discovery.encode_ble_advertisement import encode_ble_advertisement
from appliance.mesh.discovery.scan_ble_peers import scan_ble_peers
from appliance.store.load_node_id import load_node_id

PEER_DIR = Path("/var/lib/iplm-test-peer")
result: dict = {}


def read_unit_journal() -> str:
    command = ["journalctl", "-b", "-u", "iplm", "--no-pager", "-o", "cat"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout


def wait_for(check, seconds: float, step: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def main() -> None:
    result["adapters"] = sorted(entry.name for entry in Path("/sys/class/bluetooth").iterdir())
    # The unit's mesh id and node id, as its running agent writes them.
    status = json.loads(Path("/var/lib/iplm/mesh/status.json").read_text())
    mesh_id, unit_node = status["mesh_id"], status["node"]
    peer_node = load_node_id(PEER_DIR)
    result.update(unit_node=unit_node, peer_node=peer_node)
    # The unit's agent started BLE on the adapter --ble-adapter auto chose.
    result["unit_ble_started"] = wait_for(
        lambda: (
            "advertising the iplm BLE service on hci0" in read_unit_journal()
            and "scanning BLE on hci0" in read_unit_journal()
        ),
        120,
    )

    heard: list = []
    heard_unit = threading.Event()

    def on_sighting(sighting) -> None:
        heard.append([sighting.node_id, sighting.rssi])
        if sighting.node_id == unit_node:
            heard_unit.set()

    stop_scan = scan_ble_peers(mesh_id=mesh_id, node_id=peer_node, on_sighting=on_sighting, adapter="hci1")
    try:
        result["peer_heard_unit"] = heard_unit.wait(120)
    finally:
        stop_scan()
    result["peer_heard"] = heard[:5]

    async def advertise_until_heard() -> bool:
        stop = await advertise_ble(encode_ble_advertisement(mesh_id, peer_node), adapter="hci1")
        try:
            line = f"heard unit {peer_node} over BLE"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if line in await asyncio.to_thread(read_unit_journal):
                    return True
                await asyncio.sleep(2)
            return False
        finally:
            await stop()

    result["unit_heard_peer"] = asyncio.run(advertise_until_heard())
    result["unit_ble_log"] = [line for line in read_unit_journal().splitlines() if "BLE" in line][-6:]


try:
    main()
except Exception as exc:  # the test reads whatever got this far, and why it stopped
    result["error"] = f"{type(exc).__name__}: {exc}"
    try:
        result["unit_journal"] = read_unit_journal().splitlines()[-30:]
        result["btvirt"] = subprocess.run(
            ["journalctl", "-b", "-u", "iplm-test-btvirt", "-u", "bluetooth", "--no-pager", "-n", "30"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.splitlines()
    except (subprocess.SubprocessError, OSError):
        pass
print("IPLM-TEST-BLE " + json.dumps(result), flush=True)
