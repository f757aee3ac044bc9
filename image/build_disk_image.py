"""Assemble a bootable GPT disk image from a root file system, without loop devices or mounts (so it builds
in a container or CI): the ESP is made with mkfs.vfat and mtools, the root with `mkfs.ext4 -d`, and both are
written into the image at their partitions' offsets.

Boot: UEFI firmware -> systemd-boot (the root file system's own copy, EFI/BOOT/BOOT<arch>.EFI, the path
every UEFI firmware tries) -> the kernel and initramfs on the ESP, console on the screen and the serial line.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

_MIB = 1024 * 1024
_ESP_MIB = 256
_FIRST_MIB = 1  # the GPT and alignment before the first partition
# GPT partition types: the ESP, and the root by architecture (the Discoverable Partitions Specification),
# so that systemd-repart can grow the root to fill the card.
_ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
_ROOT_TYPE = {"amd64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "arm64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"}
# Quiet kernel, but systemd's status lines on the serial line: a unit is debugged there, without a screen.
_KERNEL_OPTIONS = "quiet systemd.show_status=yes"
_EFI_NAMES = {"amd64": ("systemd-bootx64.efi", "BOOTX64.EFI"), "arm64": ("systemd-bootaa64.efi", "BOOTAA64.EFI")}


def _run(command: list[str], **kwargs) -> None:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr[-2000:]}")


def _measure_mib(rootfs: Path) -> int:
    result = subprocess.run(["du", "-s", "--block-size=1M", str(rootfs)], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[0])


def _find_kernel(rootfs: Path) -> tuple[Path, Path]:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ValueError(f"no kernel in {rootfs}/boot")
    kernel = kernels[-1]
    initrd = rootfs / "boot" / kernel.name.replace("vmlinuz-", "initrd.img-")
    if not initrd.is_file():
        raise ValueError(f"no initramfs beside {kernel.name}")
    return kernel, initrd


def _make_esp(path: Path, rootfs: Path, arch: str, esp_uuid: str, root_uuid: str, kernel_options: str) -> None:
    kernel, initrd = _find_kernel(rootfs)
    source, target = _EFI_NAMES[arch]
    loader = rootfs / "usr" / "lib" / "systemd" / "boot" / "efi" / source
    if not loader.is_file():
        raise ValueError(f"no {source} in the root file system (Debian: systemd-boot-efi)")
    console = "console=tty0 console=ttyS0,115200" if arch == "amd64" else "console=tty0 console=ttyAMA0,115200"
    with tempfile.TemporaryDirectory() as scratch:
        files = Path(scratch)
        (files / "loader.conf").write_text("default iplm.conf\ntimeout 0\n", encoding="ascii")
        (files / "iplm.conf").write_text(
            "title iplm\nlinux /iplm/vmlinuz\ninitrd /iplm/initrd.img\n"
            f"options root=UUID={root_uuid} rw {console} {kernel_options}\n",
            encoding="ascii",
        )
        _run(["mkfs.vfat", "-F", "32", "-n", "IPLM-BOOT", "-i", esp_uuid.replace("-", ""), "-C", str(path),
              str(_ESP_MIB * 1024)])  # fmt: skip
        image = ["-i", str(path)]
        for folder in ("::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries", "::/iplm"):
            _run(["mmd", *image, folder])
        for source_file, target_file in (
            (loader, f"::/EFI/BOOT/{target}"),
            (files / "loader.conf", "::/loader/loader.conf"),
            (files / "iplm.conf", "::/loader/entries/iplm.conf"),
            (kernel, "::/iplm/vmlinuz"),
            (initrd, "::/iplm/initrd.img"),
        ):
            _run(["mcopy", *image, str(source_file), target_file])


def _copy_into(image: Path, part: Path, offset_mib: int) -> None:
    with open(part, "rb") as source, open(image, "r+b") as target:
        target.seek(offset_mib * _MIB)
        shutil.copyfileobj(source, target, 16 * _MIB)


def build_disk_image(
    rootfs: Path,
    image: Path,
    *,
    arch: str,
    root_uuid: str,
    esp_uuid: str,
    free_mib: int = 1024,
    kernel_options: str = _KERNEL_OPTIONS,
    progress: Callable[[str], None] = print,
) -> Path:
    """Write `image` (raw, GPT: ESP + root) from `rootfs`; the root gets `free_mib` of room (and grows to fill
    the card on first boot). `kernel_options` follow the root and console options (tests add to them)."""
    if arch not in _ROOT_TYPE:
        raise ValueError(f"arch {arch!r}: amd64 or arm64")
    for tool in ("sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists() and not Path("/sbin", tool).exists():
            raise ValueError(f"{tool} is not installed (Debian: fdisk, dosfstools, e2fsprogs, mtools)")
    root_mib = _measure_mib(rootfs) * 5 // 4 + free_mib
    total_mib = _FIRST_MIB + _ESP_MIB + root_mib + 1  # + the backup GPT at the end
    progress(f"assembling {image.name}: {total_mib} MiB (ESP {_ESP_MIB} MiB, root {root_mib} MiB)")
    image.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iplm-image-", dir=image.parent) as scratch:
        esp, root = Path(scratch) / "esp.img", Path(scratch) / "root.img"
        _make_esp(esp, rootfs, arch, esp_uuid, root_uuid, kernel_options)
        _run(["mkfs.ext4", "-q", "-F", "-L", "iplm-root", "-U", root_uuid, "-d", str(rootfs), str(root),
              f"{root_mib}M"])  # fmt: skip
        with open(image, "wb") as handle:
            handle.truncate(total_mib * _MIB)
        table = (
            "label: gpt\n"
            f"start={_FIRST_MIB * 2048}, size={_ESP_MIB * 2048}, type={_ESP_TYPE}, name=ESP\n"
            f"start={(_FIRST_MIB + _ESP_MIB) * 2048}, size={root_mib * 2048}, type={_ROOT_TYPE[arch]}, name=root\n"
        )
        _run(["sfdisk", "--quiet", str(image)], input=table)
        _copy_into(image, esp, _FIRST_MIB)
        _copy_into(image, root, _FIRST_MIB + _ESP_MIB)
    return image
