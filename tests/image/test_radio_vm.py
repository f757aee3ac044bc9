"""Real Wi-Fi, simulated radios: the image's own Debian kernel has mac80211_hwsim, so inside the VM the unit's
hostapd runs its access point with the rendered config, and a phone on a second simulated radio (the test
overlay's iplm-test-phone.service) joins it with wpa_supplicant, takes a DHCP lease from dnsmasq, is
redirected by its probe, opens the chat, gets a reply, and then its probe answers "online".

This machine's kernel has no Wi-Fi at all; the VM's has. The test image is the shipped image plus the overlay
in tests/image/radio_overlay (the module, the phone's service and script, busybox for DHCP).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.image.conftest import boot_vm

pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]

_PHONE_TIMEOUT_S = 1800  # boot, hostapd, a join and a chat, all under TCG


@pytest.fixture(scope="module")
def phone(built_image, tmp_path_factory):
    with boot_vm(built_image.radio_image, tmp_path_factory.mktemp("radio-vm")) as machine:
        found = None
        while time.monotonic() - machine.started < _PHONE_TIMEOUT_S and machine.process.poll() is None:
            found = re.search(r"IPLM-TEST-PHONE (\{.*\})", machine.read_serial())
            if found:
                break
            time.sleep(5)
        log = machine.read_serial()
        assert found, f"the test phone never reported; the serial line's end:\n{log[-8000:]}"
        result = json.loads(found.group(1))
        print(f"\ntest phone: {json.dumps(result)[:1500]}")
        yield result, log


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
