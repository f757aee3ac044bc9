"""BLE advertising through BlueZ without Bluetooth: the exported LEAdvertisement1, the registration calls
against a fake bus, and the whole D-Bus exchange on a private dbus-daemon with a fake org.bluez."""

import asyncio
import importlib
import shutil
import subprocess
import tempfile

import pytest

pytest.importorskip("dbus_fast")

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from appliance.mesh.agent.mesh_agent_types import BLE_SERVICE_UUID
from appliance.mesh.discovery.advertise_ble import advertise_ble
from appliance.mesh.discovery.encode_ble_advertisement import encode_ble_advertisement
from appliance.mesh.mesh_errors import MeshError

advertise_ble_module = importlib.import_module("appliance.mesh.discovery.advertise_ble")

DATA = encode_ble_advertisement("0123456789abcdef", "1111111111111111")
PATH = "/org/iplm/advertisement0"
MANAGER = "org.bluez.LEAdvertisingManager1"
ADVERTISEMENT = "org.bluez.LEAdvertisement1"


class FakeBus:
    """Stands in for dbus-fast's aio MessageBus: export, unexport, call and disconnect, as advertise_ble uses them.

    errors: {member: (D-Bus error name, text)} to answer a call with; "hang" in place of a pair never answers.
    """

    def __init__(self, errors=None):
        self.errors = errors or {}
        self.exported = {}
        self.log = []

    def export(self, path, interface):
        if path in self.exported:
            raise ValueError("already exported")
        self.exported[path] = interface
        self.log.append(("export", path, interface.name))

    def unexport(self, path, interface=None):
        self.exported.pop(path, None)
        self.log.append(("unexport", path))

    async def call(self, message):
        message.serial = message.serial or 1  # the real bus numbers what it sends; replies refer to it
        self.log.append(
            (
                "call",
                message.destination,
                message.path,
                message.interface,
                message.member,
                message.signature,
                message.body,
            )
        )
        error = self.errors.get(message.member)
        if error == "hang":
            await asyncio.Event().wait()
        if error is not None:
            return Message.new_error(message, *error)
        return Message.new_method_return(message)

    def disconnect(self):
        self.log.append(("disconnect",))


def served_properties(interface):
    """{name: (signature, value)} of what the exported interface serves (disabled properties are not served)."""
    return {prop.name: (prop.signature, getattr(interface, prop.name)) for prop in interface.introspect().properties}


def register_call(adapter="hci0"):
    return ("call", "org.bluez", f"/org/bluez/{adapter}", MANAGER, "RegisterAdvertisement", "oa{sv}", [PATH, {}])


def unregister_call(adapter="hci0"):
    return ("call", "org.bluez", f"/org/bluez/{adapter}", MANAGER, "UnregisterAdvertisement", "o", [PATH])


def test_the_advertisement_is_the_service_data_alone_and_fits_a_legacy_packet():
    async def scenario():
        bus = FakeBus()
        stop = await advertise_ble(DATA, bus=bus)
        interface = bus.exported[PATH]
        assert interface.name == ADVERTISEMENT
        properties = served_properties(interface)
        assert properties == {
            "Type": ("s", "broadcast"),
            "ServiceData": ("a{sv}", {BLE_SERVICE_UUID: Variant("ay", DATA)}),
        }
        # The AD structure BlueZ builds from it: length, type 0x21 (service data, 128-bit UUID), UUID, data.
        assert 2 + 16 + len(DATA) == 31
        assert {m.name for m in interface.introspect().methods} == {"Release"}
        await stop()

    asyncio.run(scenario())


def test_it_registers_on_the_adapter_and_stop_unregisters_once():
    async def scenario():
        bus = FakeBus()
        stop = await advertise_ble(DATA, adapter="hci1", bus=bus)
        assert bus.log == [("export", PATH, ADVERTISEMENT), register_call("hci1")]
        await stop()
        await stop()
        # A bus handed in stays open: its owner closes it.
        assert bus.log[2:] == [unregister_call("hci1"), ("unexport", PATH)]
        assert bus.exported == {}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "error_name, meaning",
    [
        ("org.bluez.Error.NotPermitted", "no advertising slot left"),
        ("org.bluez.Error.Failed", "powered off"),
        ("org.bluez.Error.InvalidLength", "does not fit"),
        ("org.freedesktop.DBus.Error.UnknownObject", "no Bluetooth LE adapter hci0"),
        ("org.freedesktop.DBus.Error.UnknownMethod", "no Bluetooth LE adapter hci0"),
        ("org.freedesktop.DBus.Error.ServiceUnknown", "BlueZ (bluetoothd) is not running"),
        ("org.freedesktop.DBus.Error.AccessDenied", "does not let this user advertise"),
        ("org.example.Error.Surprise", "BlueZ refused the advertisement"),
    ],
)
def test_a_refused_registration_is_a_mesh_error_and_leaves_nothing_exported(error_name, meaning):
    async def scenario():
        bus = FakeBus({"RegisterAdvertisement": (error_name, "details from BlueZ")})
        with pytest.raises(MeshError) as caught:
            await advertise_ble(DATA, bus=bus)
        assert caught.value.code == "ble_unavailable"
        assert meaning in caught.value.message
        assert error_name in caught.value.message and "details from BlueZ" in caught.value.message
        assert bus.exported == {} and bus.log[-1] == ("unexport", PATH)

    asyncio.run(scenario())


def test_a_bluez_that_does_not_answer_is_a_mesh_error(monkeypatch):
    monkeypatch.setattr(advertise_ble_module, "_CALL_TIMEOUT_S", 0.05)

    async def scenario():
        bus = FakeBus({"RegisterAdvertisement": "hang"})
        with pytest.raises(MeshError, match="BlueZ did not answer"):
            await advertise_ble(DATA, bus=bus)
        assert bus.exported == {}

    asyncio.run(scenario())


def test_stop_after_bluez_released_or_lost_the_advertisement_still_closes():
    async def scenario():
        bus = FakeBus()
        stop = await advertise_ble(DATA, bus=bus)
        bus.exported[PATH].Release()  # what BlueZ calls when it drops the advertisement itself
        await stop()
        assert unregister_call() not in bus.log and bus.exported == {}

        bus = FakeBus({"UnregisterAdvertisement": ("org.bluez.Error.DoesNotExist", "Does Not Exist")})
        stop = await advertise_ble(DATA, bus=bus)
        await stop()  # bluetoothd restarted meanwhile: no error, the object is still withdrawn
        assert bus.log[-2:] == [unregister_call(), ("unexport", PATH)]

    asyncio.run(scenario())


def test_a_second_advertisement_on_the_same_bus_is_refused():
    async def scenario():
        bus = FakeBus()
        stop = await advertise_ble(DATA, bus=bus)
        with pytest.raises(MeshError, match="already advertises"):
            await advertise_ble(DATA, bus=bus)
        await stop()

    asyncio.run(scenario())


def test_no_system_bus_or_no_dbus_fast_is_a_mesh_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    with pytest.raises(MeshError, match="no system D-Bus") as caught:
        asyncio.run(advertise_ble(DATA))
    assert caught.value.code == "ble_unavailable"
    monkeypatch.setitem(__import__("sys").modules, "dbus_fast", None)
    with pytest.raises(MeshError, match="dbus-fast is not installed"):
        asyncio.run(advertise_ble(DATA, bus=FakeBus()))


@pytest.mark.parametrize("data, adapter", [(DATA + b"\0", "hci0"), (DATA, "../hci0"), (DATA, "")])
def test_what_cannot_be_advertised_is_refused_before_any_call(data, adapter):
    bus = FakeBus()
    with pytest.raises(ValueError):
        asyncio.run(advertise_ble(data, adapter=adapter, bus=bus))
    assert bus.log == []


# --- the real D-Bus exchange: a private dbus-daemon and a fake org.bluez on it ---


@pytest.fixture(scope="module")
def bus_address():
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (Debian package dbus-daemon)")
    folder = tempfile.TemporaryDirectory(prefix="iplm-dbus-")  # short: unix socket paths stop at 108 bytes
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1", f"--address=unix:path={folder.name}/bus"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    address = daemon.stdout.readline().strip()
    try:
        if not address:
            pytest.fail("dbus-daemon did not start")
        yield address
    finally:
        daemon.terminate()
        daemon.wait(timeout=5)
        folder.cleanup()


class FakeBluez:
    """bluetoothd's LEAdvertisingManager1 on /org/bluez/hci0, as far as advertise_ble meets it.

    Like bluetoothd, it reads the advertisement back from the caller (the message's sender) with
    Properties.GetAll before it answers RegisterAdvertisement. refuse: (error name, text) to answer instead.
    """

    def __init__(self, bus, refuse=None):
        self.bus = bus
        self.refuse = refuse
        self.registered = []  # (sender, path, options, GetAll reply signature, properties)
        self.unregistered = []
        self.tasks = set()
        bus.add_message_handler(self.handle)

    def handle(self, message):
        if (
            message.message_type != MessageType.METHOD_CALL
            or message.path != "/org/bluez/hci0"
            or message.interface != MANAGER
        ):
            return None  # dbus-fast answers the rest (unknown object or method)
        if message.member == "UnregisterAdvertisement":
            self.unregistered.append((message.sender, message.body[0]))
            return Message.new_method_return(message)
        if self.refuse:
            return Message.new_error(message, *self.refuse)
        task = asyncio.ensure_future(self.register(message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True  # answered later, by register()

    async def register(self, message):
        path, options = message.body
        reply = await self.bus.call(
            Message(
                destination=message.sender,
                path=path,
                interface="org.freedesktop.DBus.Properties",
                member="GetAll",
                signature="s",
                body=[ADVERTISEMENT],
            )
        )
        if reply.message_type != MessageType.METHOD_RETURN:
            await self.bus.send(Message.new_error(message, "org.bluez.Error.Failed", "Failed to parse advertisement."))
            return
        self.registered.append((message.sender, path, options, reply.signature, reply.body[0]))
        await self.bus.send(Message.new_method_return(message))


async def start_fake_bluez(address, refuse=None):
    bus = await MessageBus(bus_address=address).connect()
    await bus.request_name("org.bluez")
    return bus, FakeBluez(bus, refuse)


async def read_back(bus, owner):
    reply = await bus.call(
        Message(
            destination=owner,
            path=PATH,
            interface="org.freedesktop.DBus.Properties",
            member="GetAll",
            signature="s",
            body=[ADVERTISEMENT],
        )
    )
    return reply.message_type, reply.body


async def has_owner(bus, name):
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="NameHasOwner",
            signature="s",
            body=[name],
        )
    )
    return reply.body[0]


def test_over_dbus_bluez_reads_back_exactly_what_it_needs(bus_address):
    async def scenario():
        unit = await MessageBus(bus_address=bus_address).connect()
        bluez_bus, bluez = await start_fake_bluez(bus_address)
        try:
            stop = await advertise_ble(DATA, bus=unit)
            [(sender, path, options, signature, properties)] = bluez.registered
            assert (sender, path, options, signature) == (unit.unique_name, PATH, {}, "a{sv}")
            assert properties == {
                "Type": Variant("s", "broadcast"),
                "ServiceData": Variant("a{sv}", {BLE_SERVICE_UUID: Variant("ay", DATA)}),
            }
            assert type(properties["ServiceData"].value[BLE_SERVICE_UUID].value) is bytes
            await stop()
            assert bluez.unregistered == [(unit.unique_name, PATH)]
            kind, _ = await read_back(bluez_bus, unit.unique_name)
            assert kind == MessageType.ERROR  # the object is gone from the bus
            assert await has_owner(bluez_bus, unit.unique_name)  # a bus handed in stays open
        finally:
            unit.disconnect()
            bluez_bus.disconnect()

    asyncio.run(scenario())


def test_over_dbus_its_own_system_bus_connection_closes_with_stop(bus_address, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address)

    async def scenario():
        bluez_bus, bluez = await start_fake_bluez(bus_address)
        try:
            stop = await advertise_ble(DATA)
            [(sender, _, _, _, properties)] = bluez.registered
            assert properties["ServiceData"] == Variant("a{sv}", {BLE_SERVICE_UUID: Variant("ay", DATA)})
            assert await has_owner(bluez_bus, sender)
            await stop()
            assert bluez.unregistered == [(sender, PATH)]
            for _ in range(100):  # the daemon notices the closed socket a moment later
                if not await has_owner(bluez_bus, sender):
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("advertise_ble kept its system bus connection open")
        finally:
            bluez_bus.disconnect()

    asyncio.run(scenario())


def test_over_dbus_a_release_from_bluez_is_taken_and_stop_does_not_unregister(bus_address):
    async def scenario():
        unit = await MessageBus(bus_address=bus_address).connect()
        bluez_bus, bluez = await start_fake_bluez(bus_address)
        try:
            stop = await advertise_ble(DATA, bus=unit)
            # bluetoothd calls Release without waiting for an answer ([noreply]).
            await bluez_bus.send(
                Message(
                    destination=unit.unique_name,
                    path=PATH,
                    interface=ADVERTISEMENT,
                    member="Release",
                    flags=MessageFlag.NO_REPLY_EXPECTED,
                )
            )
            kind, _ = await read_back(bluez_bus, unit.unique_name)  # a round trip: Release was handled before it
            assert kind == MessageType.METHOD_RETURN
            await stop()
            assert bluez.unregistered == []
        finally:
            unit.disconnect()
            bluez_bus.disconnect()

    asyncio.run(scenario())


def test_over_dbus_refusals_and_absences_are_mesh_errors(bus_address):
    async def scenario():
        unit = await MessageBus(bus_address=bus_address).connect()
        with pytest.raises(MeshError, match=r"BlueZ \(bluetoothd\) is not running"):
            await advertise_ble(DATA, bus=unit)
        bluez_bus, _ = await start_fake_bluez(
            bus_address, refuse=("org.bluez.Error.NotPermitted", "Maximum advertisements reached")
        )
        try:
            with pytest.raises(MeshError, match="no advertising slot left.*Maximum advertisements reached"):
                await advertise_ble(DATA, bus=unit)
            with pytest.raises(MeshError, match="no Bluetooth LE adapter hci9"):
                await advertise_ble(DATA, adapter="hci9", bus=unit)
            kind, _ = await read_back(bluez_bus, unit.unique_name)
            assert kind == MessageType.ERROR  # nothing left exported after a refusal
        finally:
            unit.disconnect()
            bluez_bus.disconnect()

    asyncio.run(scenario())
