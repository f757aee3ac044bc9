"""Scan for iplm units over Bluetooth LE (bleak): a proximity hint beside mDNS.

The other side is advertise_ble: an advertisement holding only our service data (a legacy packet has
no room for a service UUID list as well). BlueZ's discovery filter matches service UUID lists only, so
the scan asks for every advertisement and decode_ble_advertisement keeps those of our mesh.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from appliance.mesh.agent.mesh_agent_types import BLE_SERVICE_UUID, BleSighting
from appliance.mesh.discovery.decode_ble_advertisement import decode_ble_advertisement
from appliance.mesh.mesh_errors import MeshError

_log = logging.getLogger("iplm.mesh.ble")
_START_TIMEOUT_S = 10.0


def scan_ble_peers(
    *, mesh_id: str, node_id: str, on_sighting: Callable[[BleSighting], None], adapter: str = "hci0"
) -> Callable[[], None]:
    """Scan on `adapter` in a background thread, calling on_sighting for each advertisement of a unit of our mesh.

    Returns stop(). Raises MeshError "ble_unavailable" when bleak is missing or there is no adapter.
    """
    try:
        from bleak import BleakScanner
    except ImportError:
        raise MeshError("ble_unavailable", "bleak is not installed (pip install bleak)") from None
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    def on_detect(device, advertisement_data) -> None:
        beacon = decode_ble_advertisement(advertisement_data.service_data, mesh_id=mesh_id, node_id=node_id)
        if beacon is not None:
            on_sighting(
                BleSighting(
                    node_id=beacon.node_id,
                    rssi=advertisement_data.rssi,
                    ble_address=device.address,
                    seen_at=time.time(),
                )
            )

    async def scan() -> None:
        stopping = asyncio.Event()
        started["stopping"] = stopping
        try:
            # No service_uuids: BlueZ would then drop our advertisements, which carry no UUID list.
            # Passive scanning in bleak needs BlueZ's experimental advertisement monitors: active it is.
            scanner = BleakScanner(detection_callback=on_detect, scanning_mode="active", bluez={"adapter": adapter})
            await scanner.start()
        except Exception as exc:  # BleakError, no adapter, no D-Bus: the unit just has no BLE
            started["error"] = exc
            ready.set()
            return
        ready.set()
        try:
            await stopping.wait()
        finally:
            await scanner.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(scan(),), name="iplm-ble-scan", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT_S) or "error" in started:
        stop_loop = started.get("stopping")
        if stop_loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop_loop.set)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()
        raise MeshError("ble_unavailable", f"cannot scan for BLE: {started.get('error', 'the scanner did not start')}")

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(started["stopping"].set)
            thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    _log.info("scanning BLE on %s for iplm units (service %s)", adapter, BLE_SERVICE_UUID)
    return stop
