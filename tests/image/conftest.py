"""The unit's image, built once per test session: the package, the root file system, the disk image.

As root, with mmdebstrap, QEMU and OVMF (scripts/dev installs them) and Debian's mirror reachable. The
llama.cpp wheel is the one setup already built, unless this CPU has features QEMU's software CPU cannot
run (AVX-512, AVX-VNNI): then a build for QEMU's CPU is compiled once and cached.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from image.build_deb import build_deb
from image.build_disk_image import build_disk_image
from image.build_rootfs import build_rootfs
from image.image_types import BuiltPackage

ROOT = Path(__file__).resolve().parents[2]
# Tests read systemd's journal on the serial line (the image itself shows only status lines there).
TEST_KERNEL_OPTIONS = "systemd.show_status=yes systemd.journald.forward_to_console=1"


@dataclass(frozen=True)
class BuiltImage:
    package: BuiltPackage
    rootfs: Path
    image: Path  # as shipped (with the test's kernel options)
    radio_image: Path  # plus the radio overlay: simulated radios and Bluetooth controllers, a test phone


_OVERLAY = Path(__file__).parent / "radio_overlay"
# mac80211_hwsim: the unit's radio, the test phone's and a second unit's. In the image's Debian kernel, not
# this machine's.
_HWSIM = {"etc/modules-load.d/iplm-test-hwsim.conf": "mac80211_hwsim\n",
          "etc/modprobe.d/iplm-test-hwsim.conf": "options mac80211_hwsim radios=3\n"}  # fmt: skip


def _add_radio_overlay(rootfs: Path) -> list[Path]:
    """Put the radio test's files into `rootfs`; returns what to remove afterwards."""
    added: list[Path] = []

    def put(relative: str, data: bytes, mode: int = 0o644) -> None:
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        added.append(path)

    for relative, text in _HWSIM.items():
        put(relative, text.encode())
    # Under QEMU's software CPU on a busy machine the first token of a chat can take longer than the engine
    # watchdog's 120 s meant for boards: the test unit waits 15 minutes before it calls the engine hung.
    put("etc/iplm/iplm-test.env", b"IPLM_SERVE_ARGS=--hang-timeout 900\n")
    put("etc/systemd/system/iplm.service.d/iplm-test.conf", b"[Service]\nEnvironmentFile=/etc/iplm/iplm-test.env\n")
    for unit in ("iplm-test-phone.service", "iplm-test-btvirt.service"):
        put(f"etc/systemd/system/{unit}", (_OVERLAY / unit).read_bytes())
        wants = rootfs / "etc/systemd/system/multi-user.target.wants" / unit
        wants.symlink_to(f"/etc/systemd/system/{unit}")
        added.append(wants)
    for script in ("run_test_phone.py", "run_test_peer.py", "run_test_ble.py"):
        put(f"usr/local/lib/iplm-test/{script}", (_OVERLAY / script).read_bytes())
    put("usr/local/lib/iplm-test/udhcpc.sh", (_OVERLAY / "udhcpc.sh").read_bytes(), 0o755)
    # The phone's DHCP client (busybox udhcpc) and BlueZ's emulator (btvirt, from bluez-test-tools), from the
    # image's own Debian release (its apt, then cleaned up).
    resolv = rootfs / "etc/resolv.conf"
    shipped = resolv.read_bytes()
    resolv.write_bytes(Path("/etc/resolv.conf").read_bytes())  # the image has no resolver of its own
    download = "cd /tmp && apt-get update -qq && apt-get download -qq busybox bluez-test-tools"
    try:
        fetched = subprocess.run(["chroot", str(rootfs), "sh", "-c", download], capture_output=True, text=True)
    finally:
        resolv.write_bytes(shipped)
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    for package, inside, outside in (("busybox", "bin/busybox", "usr/local/bin/busybox"),
                                     ("bluez-test-tools", "usr/bin/btvirt", "usr/local/bin/btvirt")):  # fmt: skip
        deb = next((rootfs / "tmp").glob(f"{package}_*.deb"))
        with tempfile.TemporaryDirectory() as unpacked:
            subprocess.run(["dpkg-deb", "-x", str(deb), unpacked], check=True)
            put(outside, (Path(unpacked) / inside).read_bytes(), 0o755)
        deb.unlink()
    for lists in (rootfs / "var/lib/apt/lists").glob("*"):
        if lists.is_file():
            lists.unlink()
    return added


def _require_image_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("tests/image need root (mmdebstrap; deselect with -m 'not image')", pytrace=False)
    missing = [tool for tool in ("mmdebstrap", "sfdisk", "mkfs.vfat", "mcopy", "qemu-system-x86_64", "qemu-img") if
               shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]  # fmt: skip
    if missing:
        pytest.fail(f"tests/image need {', '.join(missing)} (scripts/dev setup --test installs them)", pytrace=False)


def _choose_llama_wheel() -> Path:
    # The build the test command installed ("tests": one that QEMU's software CPU runs too), from the cache.
    result = subprocess.run(
        [sys.executable, "-m", "appliance.engine.llama_cpp.build_llama_wheel", "--target", "tests"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, "llama.cpp could not be compiled for the tests"
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def built_image():
    _require_image_tools()
    if os.uname().machine != "x86_64":
        pytest.fail("tests/image boot the amd64 image: run them on an x86-64 machine", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="iplm-image-test-", dir="/var/tmp"))  # GBs: not a tmpfs /tmp
    try:
        package = build_deb(ROOT, _choose_llama_wheel(), work)
        root_uuid, esp_id = str(uuid.uuid4()), secrets.token_hex(4).upper()
        esp_uuid = f"{esp_id[:4]}-{esp_id[4:]}"
        rootfs = build_rootfs(package.path, work / "rootfs", root_uuid=root_uuid, esp_uuid=esp_uuid)
        assemble = functools.partial(
            build_disk_image,
            rootfs,
            arch="amd64",
            root_uuid=root_uuid,
            esp_uuid=esp_uuid,
            free_mib=512,
            kernel_options=TEST_KERNEL_OPTIONS,
        )
        image = assemble(work / "iplm.img")
        added = _add_radio_overlay(rootfs)
        radio_image = assemble(work / "radio.img")
        for path in added:  # the root file system's own tests see it as shipped
            path.unlink()
        yield BuiltImage(package=package, rootfs=rootfs, image=image, radio_image=radio_image)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class ProvisionedRoot:
    root: Path
    runs: tuple[str, ...]  # each ansible-playbook run's output


def _run_playbook(root: Path, deb: Path, inventory: Path) -> str:
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(inventory),
            str(ROOT / "ansible" / "site.yml"),
            "-e",
            json.dumps({"iplm_deb": str(deb), "iplm_country": "de", "iplm_wifi_passphrase": "correct horse battery"}),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "0"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="session")
def provisioned_root(built_image):
    """A fresh Debian root (python3 for Ansible, systemd as on any board) that the Ansible roles turned
    into a unit, twice, through Ansible's chroot connection."""
    if shutil.which("ansible-playbook") is None:
        pytest.fail("the Ansible test needs ansible (Debian: ansible; scripts/dev setup --test)", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="iplm-ansible-test-", dir="/var/tmp"))
    try:
        root = work / "root"
        command = ["mmdebstrap", "--variant=minbase", "--mode=root", "--include=python3,systemd-sysv",
                   "--skip=cleanup/apt/lists", "bookworm", str(root)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-4000:]
        inventory = work / "inventory.ini"
        inventory.write_text(f"[iplm_units]\n{root} ansible_connection=community.general.chroot\n")
        runs = tuple(_run_playbook(root, built_image.package.path, inventory) for _ in range(2))
        yield ProvisionedRoot(root=root, runs=runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


_OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
_OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


@dataclass(frozen=True)
class RunningVm:
    process: subprocess.Popen
    base: str  # the guest's port 80, forwarded to loopback
    serial: Path
    started: float

    def read_serial(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""


@contextlib.contextmanager
def boot_vm(image: Path, work: Path, *, growth: int = 0) -> Iterator[RunningVm]:
    """Power on `image` in QEMU (TCG: nested KVM hangs on this kind of machine) under UEFI firmware, through a
    qcow2 overlay `growth` bytes bigger (the built image stays as built); power it off afterwards."""
    if not _OVMF_CODE.is_file():
        pytest.fail("the VM tests need OVMF (Debian: ovmf; scripts/dev setup --test installs it)", pytrace=False)
    vars_file = work / "vars.fd"
    vars_file.write_bytes(_OVMF_VARS.read_bytes())
    overlay = work / "disk.qcow2"
    size = image.stat().st_size + growth
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image), str(overlay), str(size)],
        check=True,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serial = work / "serial.log"
    command = [
        "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "3072",
        "-display", "none", "-monitor", "none", "-serial", f"file:{serial}",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}",
        "-drive", f"file={overlay},format=qcow2,if=virtio",
        # restrict=on: the guest reaches nothing outside; only the portal is forwarded in.
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:80",
        "-device", "virtio-net-pci,netdev=net0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield RunningVm(process=process, base=f"http://127.0.0.1:{port}", serial=serial, started=time.monotonic())
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
