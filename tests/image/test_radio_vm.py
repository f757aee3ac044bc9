"""Real Wi-Fi, simulated radios: the image's own Debian kernel has mac80211_hwsim, so inside the VM the unit's
hostapd runs its access point with the rendered config, and a phone on a second simulated radio (the test
overlay's iplm-test-phone.service) joins it with wpa_supplicant, takes a DHCP lease from dnsmasq, is
redirected by its probe, opens the chat, gets a reply, and then its probe answers "online". Then a second
unit on a third radio forms the 802.11s mesh link with it, and on BlueZ's virtual controllers (hci_vhci) the
two find each other over BLE.

This machine's kernel has no Wi-Fi at all; the VM's has. The test image is the shipped image plus the overlay
in tests/image/radio_overlay (the modules, the phone's and second unit's scripts, busybox for DHCP, btvirt).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.image.conftest import boot_vm

pytestmark = [pytest.mark.image, pytest.mark.timeout(3000)]

_PHONE_TIMEOUT_S = 1800  # boot, hostapd, a join and a chat, all under TCG
_PEER_TIMEOUT_S = 2700  # then a second unit's apply, SAE peering and batman-adv, also under TCG
_BLE_TIMEOUT_S = 3000  # then the two find each other over BLE (a few minutes at most)


@pytest.fixture(scope="module")
def radio_vm(built_image, tmp_path_factory):
    with boot_vm(built_image.radio_image, tmp_path_factory.mktemp("radio-vm")) as machine:
        yield machine


def _wait_for_report(machine, tag: str, timeout_s: float) -> tuple[dict, str]:
    """The JSON the overlay's script printed after `tag` on the serial line (seconds counted from power-on)."""
    found = None
    while time.monotonic() - machine.started < timeout_s and machine.process.poll() is None:
        found = re.search(tag + r" (\{.*\})", machine.read_serial())
        if found:
            break
        time.sleep(5)
    log = machine.read_serial()
    assert found, f"{tag} never came; the serial line's end:\n{log[-8000:]}"
    result = json.loads(found.group(1))
    print(f"\n{tag}: {json.dumps(result)[:2500]}")
    return result, log


@pytest.fixture(scope="module")
def phone(radio_vm):
    return _wait_for_report(radio_vm, "IPLM-TEST-PHONE", _PHONE_TIMEOUT_S)


@pytest.fixture(scope="module")
def peer(radio_vm):
    return _wait_for_report(radio_vm, "IPLM-TEST-PEER", _PEER_TIMEOUT_S)


@pytest.fixture(scope="module")
def ble(radio_vm):
    return _wait_for_report(radio_vm, "IPLM-TEST-BLE", _BLE_TIMEOUT_S)


def test_hostapd_runs_the_rendered_access_point_on_a_simulated_radio(phone):
    result, log = phone
    assert "error" not in result, result
    assert "Started iplm-hostapd.service" in log and "Started iplm-dnsmasq.service" in log
    assert result["hostapd_up"] is True


def test_a_phone_joins_with_enhanced_open_and_gets_a_lease_from_the_unit(phone):
    result, _ = phone
    assert result["joined"] is True, result
    assert result["wifi"]["key_mgmt"] == "OWE" and result["wifi"]["pmf"] == "2", result["wifi"]
    address, router, dns = result["lease"]
    assert address.startswith("198.18.0.") and address != "198.18.0.1"
    assert router == "198.18.0.1" and dns == "198.18.0.1"


def test_the_phone_is_sent_to_the_chat_gets_a_reply_and_then_goes_online(phone):
    result, _ = phone
    assert result["probe_before"] == [302, "http://198.18.0.1/"]
    assert result["page"] == 200 and result["opened"] == 204
    assert result["chat_status"] == 200 and result["reply"].strip(), result
    assert result["probe_after"] == [204]


def test_the_owner_puts_the_unit_in_a_mesh_and_its_wi_fi_mesh_link_starts(peer):
    result, log = peer
    assert result["admin"] == 200 and result["created"] == 200, result
    assert result["mesh_point"] == "mesh0"
    assert result["link_started"] is True and result["unit_conf"] is True, result


def test_two_units_radios_form_the_mesh_link_under_batman_adv(peer):
    result, _ = peer
    assert "error" not in result, result
    assert result["peered"] is True, result
    assert result["unit_sees"] == [result["peer_mesh_mac"]] and result["peer_sees"] == [result["unit_mesh_mac"]]
    assert result["batman_neighbours"] is True, result
    assert result["unit_mesh_address"].startswith("169.254.")
    assert result["over_the_mesh"] is True, result


def test_the_units_find_each_other_over_ble_on_virtual_controllers(ble):
    result, _ = ble
    assert "error" not in result, result
    assert result["adapters"][:2] == ["hci0", "hci1"], result
    # The unit's service (as the iplm user, through the system bus policy) advertises and scans on hci0.
    assert result["unit_ble_started"] is True, result
    # Its advertisement reached the second unit's scan, which decoded the unit's node id from it ...
    assert result["peer_heard_unit"] is True, result
    assert result["unit_node"] in [node for node, _rssi in result["peer_heard"]]  # btvirt's RSSI: 127, unknown
    # ... and the second unit's advertisement reached the unit's scan.
    assert result["unit_heard_peer"] is True, result
