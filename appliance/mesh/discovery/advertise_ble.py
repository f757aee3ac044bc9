"""Advertise this unit over Bluetooth LE, so that scan_ble_peers on other units hears it.

bleak only scans. Advertising is BlueZ's job: we export an org.bluez.LEAdvertisement1 object on the
system bus (dbus-fast) and register it with org.bluez.LEAdvertisingManager1 on the adapter; BlueZ reads
its properties back over D-Bus, builds the packets, and advertises until we unregister it or our bus
connection closes (so a crashed agent stops advertising by itself).

Packet budget. A legacy advertising packet carries 31 bytes, and legacy is what every controller and
every BlueZ sends and hears. Our service data under its 128-bit UUID takes exactly 31 (length, type,
UUID, 13 bytes), so the advertisement holds the service data and nothing else: no service UUID list
(another 18 bytes), no scan response (ScanResponseServiceData needs BlueZ 5.80; Debian 12 has 5.66,
JetPack 6 5.64). A broadcast advertisement carries no Flags field on a dual-mode controller, so it
stays a legacy packet. Scanners therefore cannot ask BlueZ to filter on the UUID (BlueZ matches its
discovery filter against service UUID lists only): scan_ble_peers reads every advertisement's service
data instead.

Type "broadcast": nothing needs to connect to a unit over BLE, and a connectable unit would show its
GATT device name to anyone near (DESIGN: anonymous).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from appliance.mesh.agent.mesh_agent_types import BLE_SERVICE_UUID
from appliance.mesh.mesh_errors import MeshError

_log = logging.getLogger("iplm.mesh.ble")
_BLUEZ = "org.bluez"
_MANAGER_INTERFACE = "org.bluez.LEAdvertisingManager1"
_ADVERTISEMENT_INTERFACE = "org.bluez.LEAdvertisement1"
_ADVERTISEMENT_PATH = "/org/iplm/advertisement0"
_ADAPTER_NAME = re.compile(r"[A-Za-z0-9_]+")
# 31 bytes less the service data field's length, type and 128-bit UUID.
_MAX_SERVICE_DATA = 31 - 2 - 16
# BlueZ answers RegisterAdvertisement only once the kernel took the advertisement; a wedged
# bluetoothd must not hold the agent's start.
_CALL_TIMEOUT_S = 10.0

# What the D-Bus errors of RegisterAdvertisement mean on a unit.
_NO_BLUEZ = "BlueZ (bluetoothd) is not running"
_NO_ADAPTER = "there is no Bluetooth LE adapter {adapter} (or it cannot advertise)"
_EXPLANATIONS = {
    "org.freedesktop.DBus.Error.ServiceUnknown": _NO_BLUEZ,
    "org.freedesktop.DBus.Error.NameHasNoOwner": _NO_BLUEZ,
    "org.freedesktop.DBus.Error.UnknownObject": _NO_ADAPTER,
    "org.freedesktop.DBus.Error.UnknownInterface": _NO_ADAPTER,
    "org.freedesktop.DBus.Error.UnknownMethod": _NO_ADAPTER,
    "org.freedesktop.DBus.Error.AccessDenied": (
        "the system bus does not let this user advertise (root, or a D-Bus policy for org.bluez, is needed)"
    ),
    "org.freedesktop.DBus.Error.NoReply": "BlueZ did not answer",
    "org.freedesktop.DBus.Error.Disconnected": "the call over the system bus failed",
    "org.bluez.Error.NotPermitted": "adapter {adapter} has no advertising slot left (other advertisers hold them)",
    "org.bluez.Error.AlreadyExists": "this connection already advertises on adapter {adapter}",
    "org.bluez.Error.InvalidLength": "the advertisement does not fit in a packet of adapter {adapter}",
    "org.bluez.Error.InvalidArguments": "BlueZ refused the advertisement's properties",
    "org.bluez.Error.Failed": (
        "BlueZ refused the advertisement (adapter {adapter} powered off, or the data does not fit its packets)"
    ),
}


def _describe_advertisement(service_data: bytes) -> dict:
    """The LEAdvertisement1 properties: {name: (D-Bus signature, value)}, values as D-Bus carries them."""
    return {
        "Type": ("s", "broadcast"),
        "ServiceData": ("a{sv}", {BLE_SERVICE_UUID: ("ay", bytes(service_data))}),
    }


def _explain(error_name: str, text: str, adapter: str) -> str:
    meaning = _EXPLANATIONS.get(error_name, "BlueZ refused the advertisement").format(adapter=adapter)
    return f"cannot advertise over BLE: {meaning} ({error_name}: {text})"


def _new_advertisement(properties: dict, on_release: Callable[[], None]):
    """A dbus-fast ServiceInterface that serves `properties` as org.bluez.LEAdvertisement1."""
    from dbus_fast import Variant
    from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

    def read(name: str):
        signature, value = properties[name]
        if signature == "a{sv}":
            return {key: Variant(*inner) for key, inner in value.items()}
        return value

    class _Advertisement(ServiceInterface):
        @dbus_property(access=PropertyAccess.READ)
        def Type(self) -> "s":
            return read("Type")

        @dbus_property(access=PropertyAccess.READ)
        def ServiceData(self) -> "a{sv}":
            return read("ServiceData")

        # No return annotation: dbus-fast reads annotations as D-Bus signatures, and "None" is none.
        @method()
        def Release(self):
            on_release()

    return _Advertisement(_ADVERTISEMENT_INTERFACE)


async def _call_manager(bus, adapter: str, member: str, signature: str, body: list) -> tuple[str, str] | None:
    """Call LEAdvertisingManager1.<member> on the adapter; (error name, text) or None when it succeeded."""
    from dbus_fast import Message, MessageType

    message = Message(
        destination=_BLUEZ,
        path=f"/org/bluez/{adapter}",
        interface=_MANAGER_INTERFACE,
        member=member,
        signature=signature,
        body=body,
    )
    try:
        reply = await asyncio.wait_for(bus.call(message), _CALL_TIMEOUT_S)
    # asyncio's own class: the builtin TimeoutError only from Python 3.11 on (JetPack 6 has 3.10).
    except asyncio.TimeoutError:
        return "org.freedesktop.DBus.Error.NoReply", f"no answer in {_CALL_TIMEOUT_S:g} s"
    except Exception as exc:  # the bus connection broke: the agent goes on without BLE
        return "org.freedesktop.DBus.Error.Disconnected", str(exc)
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        return reply.error_name, text
    return None


async def advertise_ble(
    service_data: bytes, *, adapter: str = "hci0", bus=None
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Advertise the iplm BLE service with `service_data` (encode_ble_advertisement) through BlueZ.

    Returns an async stop() that unregisters. `bus`: a connected dbus-fast aio MessageBus (tests);
    by default the system bus. Raises MeshError "ble_unavailable" when it cannot advertise.
    """
    if len(service_data) > _MAX_SERVICE_DATA:
        raise ValueError(f"BLE service data is at most {_MAX_SERVICE_DATA} bytes")
    if not _ADAPTER_NAME.fullmatch(adapter):
        raise ValueError(f"not an adapter name: {adapter!r}")
    try:
        from dbus_fast import BusType
        from dbus_fast.aio import MessageBus
    except ImportError:
        raise MeshError("ble_unavailable", "cannot advertise over BLE: dbus-fast is not installed") from None
    own_bus = bus is None
    if own_bus:
        try:
            bus = await asyncio.wait_for(MessageBus(bus_type=BusType.SYSTEM).connect(), _CALL_TIMEOUT_S)
        except Exception as exc:  # no socket, refused, timed out: this unit has no system bus to talk to
            raise MeshError(
                "ble_unavailable", f"cannot advertise over BLE: no system D-Bus ({type(exc).__name__}: {exc})"
            ) from None
    state = {"released": False, "stopped": False}

    def on_release() -> None:
        # BlueZ dropped it (bluetoothd stopping, adapter gone); there is nothing left to unregister.
        state["released"] = True
        _log.warning("BlueZ released the BLE advertisement on %s", adapter)

    advertisement = _new_advertisement(_describe_advertisement(service_data), on_release)

    def close() -> None:
        bus.unexport(_ADVERTISEMENT_PATH, advertisement)
        if own_bus:
            bus.disconnect()

    try:
        bus.export(_ADVERTISEMENT_PATH, advertisement)
    except ValueError:
        if own_bus:
            bus.disconnect()
        raise MeshError("ble_unavailable", "cannot advertise over BLE: this bus already advertises") from None
    failure = await _call_manager(bus, adapter, "RegisterAdvertisement", "oa{sv}", [_ADVERTISEMENT_PATH, {}])
    if failure is not None:
        close()
        raise MeshError("ble_unavailable", _explain(*failure, adapter))
    _log.info("advertising the iplm BLE service on %s", adapter)

    async def stop() -> None:
        if state["stopped"]:
            return
        state["stopped"] = True
        try:
            if not state["released"]:
                failure = await _call_manager(bus, adapter, "UnregisterAdvertisement", "o", [_ADVERTISEMENT_PATH])
                if failure is not None:  # gone already (bluetoothd restarted): closing is all that is left
                    _log.info("BLE advertisement on %s: %s", adapter, _explain(*failure, adapter))
        finally:
            close()

    return stop
