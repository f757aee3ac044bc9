"""The amd64 image booted in QEMU (TCG: nested KVM hangs on this kind of machine), UEFI firmware and all.

No Wi-Fi radio in this VM: the unit must serve on its Ethernet port. The guest's Ethernet is QEMU's user
network, reachable only through the ports forwarded to loopback. What happened inside is read from the
serial line, where the test image's journal is forwarded.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.image.conftest import boot_vm

# Building the image (minutes) counts against the first test that needs it.
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

_BOOT_TIMEOUT_S = 900  # TCG on two cores: minutes
_CHAT_TIMEOUT_S = 600
_GROWTH = 1024 * 1024 * 1024


@pytest.fixture(scope="module")
def vm(built_image, tmp_path_factory):
    # The "card" is 1 GiB bigger than the image: first boot grows the root into it.
    with boot_vm(built_image.image, tmp_path_factory.mktemp("vm"), growth=_GROWTH) as machine:
        boot_s = None
        while time.monotonic() - machine.started < _BOOT_TIMEOUT_S and machine.process.poll() is None:
            try:
                if httpx.get(f"{machine.base}/healthz", timeout=5).status_code == 200:
                    boot_s = time.monotonic() - machine.started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        log = machine.read_serial()
        assert boot_s is not None, f"the portal never answered; the serial line's end:\n{log[-6000:]}"
        print(f"\npower-on to portal answering: {boot_s:.0f} s (QEMU TCG, 2 vCPUs)")
        yield {"base": machine.base, "serial": machine.serial, "boot_s": boot_s}


def _read_serial(vm) -> str:
    return vm["serial"].read_text(errors="replace")


def test_the_unit_boots_to_its_portal_on_ethernet_with_every_service_in_order(vm):
    page = httpx.get(vm["base"] + "/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    log = _read_serial(vm)
    for unit in ("iplm-firstboot.service", "iplm-network.service"):
        assert re.search(rf"Finished {re.escape(unit)}", log), unit
    assert "Started iplm.service" in log and "Started iplm-mosquitto.path" in log
    assert "no Wi-Fi radio here" in log
    # Without a radio: no access point, no DHCP for phones; without a mesh key: no broker.
    assert re.search(r"iplm-hostapd.service .*skipped because of an unmet condition", log)
    assert re.search(r"iplm-dnsmasq.service .*skipped because of an unmet condition", log)
    assert "Started iplm-mosquitto.service" not in log
    assert not re.search(r"Failed to start|iplm.service: Failed with result|Traceback", log), log[-4000:]


def test_first_boot_grows_the_root_to_fill_the_disk(vm):
    log = _read_serial(vm)
    assert re.search(r"systemd-repart\[\d+\]: .*[Gg]row", log), "systemd-repart grows the root partition"
    assert re.search(r"systemd-growfs\[\d+\]: Successfully resized \"/\"", log), "and the file system after it"


def test_first_boot_names_the_unit_and_its_pin_opens_the_admin_page(vm):
    log = _read_serial(vm)
    found = re.search(
        r"unit (iplm-[0-9a-f]{4}): the admin PIN is (\d{8}) \(also in /boot/efi/iplm-admin-pin\.txt\)", log
    )
    assert found, "the PIN is shown on the serial line and written to the boot partition"
    name, pin = found.groups()
    assert re.search(rf"Host name is {name}\.local", log), "avahi announces the unit's own name"
    with httpx.Client(base_url=vm["base"], timeout=60) as owner:
        wrong = f"{(int(pin) + 1) % 10**8:08d}"
        assert owner.post("/api/admin/session", json={"pin": wrong}).status_code == 403
        assert owner.post("/api/admin/session", json={"pin": pin}).status_code == 200


def test_a_chat_gets_a_reply_from_the_default_model_inside_the_vm(vm):
    reply = httpx.post(
        vm["base"] + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0},
        timeout=_CHAT_TIMEOUT_S,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"].strip() and body["usage"]["completion_tokens"] >= 1
