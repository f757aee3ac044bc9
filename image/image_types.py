"""Data shapes of the image build: what goes into the package, and the Debian packages a unit needs."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

PACKAGE_NAME = "iplm"
# Debian 12's Python: the package's virtualenv is built for it (the wheels' cp311 tags) by default; a package
# for another system names its own (Ubuntu 22.04 on a Jetson: 3.10).
TARGET_PYTHON = "3.11"
# Debian 12's C library: the newest manylinux tag a wheel from PyPI may carry and still run on the unit.
TARGET_GLIBC = (2, 36)
# What the unit runs beside iplm serve; the package depends on them, the image holds them.
RUNTIME_DEPENDS = (
    "python3.11",
    "libgomp1",  # llama.cpp's OpenMP threads
    "mosquitto",
    "hostapd",
    "dnsmasq-base",
    "nftables",
    "wpasupplicant",
    "batctl",
    "iw",
    "wireless-regdb",  # the radio's country rules: without it the kernel keeps the world domain
    "bluez",
    "chrony",
    "avahi-daemon",
    "iproute2",
    "udev",
)
# Debian's name for the wheel's machine.
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class BuiltPackage:
    """A built .deb and what is in it."""

    path: Path
    version: str
    arch: str
    installed_size_kib: int
    wheels: tuple[str, ...]  # the wheel files its virtualenv was made from
    python: str = TARGET_PYTHON  # the Python version its virtualenv is for ("3.11")


@dataclass(frozen=True)
class RunningVm:
    """An image powered on in QEMU by boot_image."""

    process: subprocess.Popen
    base: str  # the guest's port 80, forwarded to loopback: http://127.0.0.1:PORT
    serial: Path  # the serial console's output, as it comes
    started: float  # time.monotonic() at power-on
