"""Build a unit's root file system with mmdebstrap: Debian 12, a kernel, systemd, and the iplm package.

Nothing is set up here that the package (or its Ansible twin) does not do too: the root file system only
adds what a machine needs to boot on its own (kernel, initramfs, fstab, wired DHCP, a serial console), the
rest comes from installing the package, exactly as on a board that already runs Linux.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from image.image_types import DEBIAN_ARCH, RUNTIME_DEPENDS

# What a booting unit needs beyond the package's own dependencies.
_BOOT_PACKAGES = (
    "systemd-sysv",
    "udev",
    "kmod",
    "dbus",
    "initramfs-tools",
    "systemd-boot-efi",  # the boot loader copied to the ESP (its files only; nothing runs from the root)
    "e2fsprogs",
    "dosfstools",
    "ca-certificates",
    "less",
    "nano",
)
_KERNEL = {"amd64": "linux-image-amd64", "arm64": "linux-image-arm64"}

# Wired Ethernet takes an address by DHCP: a unit without Wi-Fi (a VM, a board on a LAN) serves there.
_WIRED_NETWORK = """[Match]
Name=en* eth*

[Network]
DHCP=yes
LinkLocalAddressing=yes
"""


def _read_host_mirror(etc_apt: Path = Path("/etc/apt")) -> str | None:
    """The Debian mirror this machine's apt uses (a CI machine may reach Debian only through its own), or None
    (mmdebstrap's default, deb.debian.org). Only a Debian archive: an Ubuntu host's mirror has no bookworm."""
    uris: list[str] = []
    for source in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.startswith("URIs:"):
                uris += line.split()[1:]
    listing = etc_apt / "sources.list"
    for line in listing.read_text(encoding="utf-8").splitlines() if listing.exists() else ():
        if line.split()[:1] == ["deb"]:
            rest = line.split(None, 1)[1].strip()
            if rest.startswith("["):  # deb [arch=amd64 signed-by=...] URI suite components
                rest = rest.split("]", 1)[1]
            uris += rest.split()[:1]
    return next((uri for uri in uris if uri.rstrip("/").endswith("/debian")), None)


def _write_extras(rootfs: Path, root_uuid: str, esp_uuid: str) -> None:
    """fstab, wired networking, a neutral hostname until first boot, no root password."""
    (rootfs / "etc" / "fstab").write_text(
        "# The root grows to fill the card at first boot (x-systemd.growfs); the ESP holds the kernel and\n"
        "# the PIN file the owner reads on any computer.\n"
        f"UUID={root_uuid}\t/\text4\tdefaults,noatime,x-systemd.growfs\t0\t1\n"
        f"UUID={esp_uuid}\t/boot/efi\tvfat\tumask=0077,noatime\t0\t2\n",
        encoding="utf-8",
    )
    (rootfs / "boot" / "efi").mkdir(parents=True, exist_ok=True)
    network = rootfs / "etc" / "systemd" / "network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "20-wired.network").write_text(_WIRED_NETWORK, encoding="utf-8")
    # The card is bigger than the image: at first boot systemd-repart grows the root partition to the end of
    # the disk (it knows it by its GPT type), then x-systemd.growfs grows the file system into it.
    repart = rootfs / "etc" / "repart.d"
    repart.mkdir(parents=True, exist_ok=True)
    (repart / "50-root.conf").write_text("[Partition]\nType=root\n", encoding="utf-8")
    (rootfs / "etc" / "hostname").write_text("iplm\n", encoding="utf-8")  # iplm-XXXX from first boot on
    # Not the build machine's resolver: a unit needs none (it is offline; dnsmasq answers its phones).
    resolv = rootfs / "etc" / "resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_text("# iplm: no resolver; the unit works offline\n", encoding="utf-8")
    # Every unit makes its own machine id at first boot (empty file: systemd fills it in).
    (rootfs / "etc" / "machine-id").write_text("", encoding="utf-8")
    dbus_id = rootfs / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()


def build_rootfs(
    deb: Path,
    rootfs: Path,
    *,
    arch: str = "amd64",
    suite: str = "bookworm",
    mirror: str | None = None,
    root_uuid: str,
    esp_uuid: str,
    progress: Callable[[str], None] = print,
) -> Path:
    """Make `rootfs` (a directory, replaced) holding Debian `suite`, a kernel and the package `deb`."""
    if arch not in _KERNEL:
        raise ValueError(f"arch {arch!r}: amd64 or arm64")
    if shutil.which("mmdebstrap") is None:
        raise ValueError("mmdebstrap is not installed (Debian: apt install mmdebstrap)")
    if rootfs.exists():
        shutil.rmtree(rootfs)
    packages = ",".join((*_BOOT_PACKAGES, _KERNEL[arch], *RUNTIME_DEPENDS))
    command = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        f"--architectures={arch}",
        f"--include={packages}",
        # The package goes in like on any board: apt installs it with its dependencies, its postinst runs.
        f"--customize-hook=copy-in {deb} /tmp",
        f'--customize-hook=chroot "$1" apt-get install -y --no-install-recommends /tmp/{deb.name}',
        f'--customize-hook=rm "$1/tmp/{deb.name}"',
        '--customize-hook=chroot "$1" systemctl enable --quiet systemd-networkd.service',
        '--customize-hook=chroot "$1" passwd --lock root',
        suite,
        str(rootfs),
    ]
    mirror = mirror or _read_host_mirror()
    if mirror:
        command.append(mirror)
    # Another architecture's package scripts (the initramfs above all) run under QEMU's user-mode emulation.
    emulated = DEBIAN_ARCH.get(platform.machine()) != arch
    took = "about 50 minutes under QEMU's emulation" if emulated else "about 2 minutes"
    progress(f"building the root file system ({suite}, {arch}) with mmdebstrap: {took}, more to download")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed:\n{result.stderr[-4000:]}")
    _write_extras(rootfs, root_uuid, esp_uuid)
    return rootfs
