"""BLE discovery without Bluetooth: the service data codec, the decisions, and the scanner against a fake bleak."""

import sys
import threading
import types
from types import SimpleNamespace

import pytest

from appliance.mesh.agent.mesh_agent_types import BLE_SERVICE_UUID, BleBeacon, BleSighting
from appliance.mesh.discovery.decode_ble_advertisement import decode_ble_advertisement
from appliance.mesh.discovery.encode_ble_advertisement import encode_ble_advertisement
from appliance.mesh.discovery.scan_ble_peers import scan_ble_peers
from appliance.mesh.discovery.update_ble_proximity import update_ble_proximity
from appliance.mesh.mesh_errors import MeshError

MESH = "0123456789abcdef"
ME, PEER = "1111111111111111", "2222222222222222"


def test_the_service_data_fits_a_legacy_advertisement_and_decodes():
    raw = encode_ble_advertisement(MESH, PEER)
    # 31 bytes per legacy packet: 1 length + 1 type + 16 UUID + our data.
    assert len(raw) == 13 and 2 + 16 + len(raw) <= 31
    assert decode_ble_advertisement({BLE_SERVICE_UUID: raw}, mesh_id=MESH, node_id=ME) == BleBeacon(
        version=1, mesh_tag="01234567", node_id=PEER
    )
    assert decode_ble_advertisement({BLE_SERVICE_UUID.upper(): bytearray(raw)}, mesh_id=MESH).node_id == PEER


@pytest.mark.parametrize(
    "service_data",
    [
        {},
        None,
        {"0000feaa-0000-1000-8000-00805f9b34fb": encode_ble_advertisement(MESH, PEER)},  # someone else's service
        {BLE_SERVICE_UUID: encode_ble_advertisement("fedcba9876543210", PEER)},  # another mesh
        {BLE_SERVICE_UUID: encode_ble_advertisement(MESH, ME)},  # this unit itself
        {BLE_SERVICE_UUID: b"\x02" + encode_ble_advertisement(MESH, PEER)[1:]},  # a future version
        {BLE_SERVICE_UUID: encode_ble_advertisement(MESH, PEER)[:12]},  # cut short
        {BLE_SERVICE_UUID: encode_ble_advertisement(MESH, PEER) + b"\0"},
        {BLE_SERVICE_UUID: b""},
    ],
)
def test_advertisements_that_are_not_a_peer_of_this_mesh_are_ignored(service_data):
    assert decode_ble_advertisement(service_data, mesh_id=MESH, node_id=ME) is None


@pytest.mark.parametrize("mesh_id, node_id", [("0123", PEER), (MESH, "xyz"), (MESH.upper(), PEER)])
def test_encoding_refuses_what_is_not_an_id(mesh_id, node_id):
    with pytest.raises(ValueError):
        encode_ble_advertisement(mesh_id, node_id)


def test_proximity_is_smoothed_and_forgotten():
    table = update_ble_proximity({}, BleSighting(PEER, -60, "AA:BB", 100.0), now=100.0)
    assert table == {PEER: {"rssi": -60, "ble_address": "AA:BB", "seen_at": 100.0}}
    table = update_ble_proximity(table, BleSighting(PEER, -80, "AA:BB", 101.0), now=101.0)
    assert table[PEER]["rssi"] == -66  # one noisy packet moves the estimate by 30 %
    table = update_ble_proximity(table, BleSighting(ME, 127, "CC", 102.0), now=102.0)  # 127: "no RSSI"
    assert table[ME] == {"rssi": None, "ble_address": "CC", "seen_at": 102.0}  # heard, distance unknown
    table = update_ble_proximity(table, BleSighting(PEER, 127, "AA:BB", 103.0), now=103.0)
    assert table[PEER] == {"rssi": -66, "ble_address": "AA:BB", "seen_at": 103.0}  # the estimate stays
    table = update_ble_proximity(table, BleSighting(ME, -70, "CC", 104.0), now=104.0)
    assert table[ME]["rssi"] == -70  # the first real value is taken as it is
    table = update_ble_proximity(table, BleSighting(ME, -70, "CC", 140.0), now=140.0)
    assert set(table) == {ME}  # not heard for 30 s: forgotten
    table = update_ble_proximity(
        {PEER: {"rssi": -90, "ble_address": "AA", "seen_at": 100.0}}, BleSighting(PEER, -40, "AA", 200.0), now=200.0
    )
    assert table[PEER]["rssi"] == -40  # a stale estimate is not averaged in


def _install_fake_bleak(monkeypatch, adverts, fail=None):
    created = []

    class BleakScanner:
        def __init__(self, detection_callback=None, service_uuids=None, scanning_mode="active", **kwargs):
            self.callback, self.kwargs = (
                detection_callback,
                {"service_uuids": service_uuids, "scanning_mode": scanning_mode, **kwargs},
            )
            self.stopped = threading.Event()
            created.append(self)

        async def start(self):
            if fail is not None:
                raise fail
            for address, service_data, rssi in adverts:
                self.callback(
                    SimpleNamespace(address=address),
                    SimpleNamespace(service_data=service_data, rssi=rssi, local_name=None),
                )

        async def stop(self):
            self.stopped.set()

    module = types.ModuleType("bleak")
    module.BleakScanner = BleakScanner
    monkeypatch.setitem(sys.modules, "bleak", module)
    return created


def test_the_scanner_hears_every_advertisement_and_reports_peers_of_this_mesh(monkeypatch):
    created = _install_fake_bleak(
        monkeypatch,
        [
            ("AA:BB", {BLE_SERVICE_UUID: encode_ble_advertisement(MESH, PEER)}, -55),
            ("CC:DD", {BLE_SERVICE_UUID: encode_ble_advertisement("fedcba9876543210", PEER)}, -40),
            ("EE:FF", {BLE_SERVICE_UUID: encode_ble_advertisement(MESH, ME)}, -30),
            ("11:22", {}, -20),  # a phone or a watch
            ("33:44", {"0000feaa-0000-1000-8000-00805f9b34fb": b"\x10\x00"}, -20),
        ],
    )
    seen = []
    stop = scan_ble_peers(mesh_id=MESH, node_id=ME, on_sighting=seen.append, adapter="hci1")
    stop()
    # No UUID filter: BlueZ matches it against service UUID lists, which our advertisement does not carry.
    assert created[0].kwargs["service_uuids"] is None
    assert created[0].kwargs["bluez"] == {"adapter": "hci1"}
    assert created[0].stopped.is_set()
    assert [(s.node_id, s.rssi, s.ble_address) for s in seen] == [(PEER, -55, "AA:BB")]


def test_no_adapter_or_no_bleak_is_a_mesh_error(monkeypatch):
    _install_fake_bleak(monkeypatch, [], fail=OSError("No Bluetooth adapters found."))
    with pytest.raises(MeshError) as info:
        scan_ble_peers(mesh_id=MESH, node_id=ME, on_sighting=print)
    assert info.value.code == "ble_unavailable" and "adapters" in info.value.message
    monkeypatch.setitem(sys.modules, "bleak", None)  # import fails
    with pytest.raises(MeshError) as info:
        scan_ble_peers(mesh_id=MESH, node_id=ME, on_sighting=print)
    assert info.value.code == "ble_unavailable"
