"""`scripts/dev image`: build the unit's package, root file system and bootable disk image in one go.

    python -m image.build_image [--arch amd64] [--output build/image] [--llama-wheel W | --llama-target T]

As root (mmdebstrap and the image's file ownership). The llama.cpp build defaults to the generic one for the
architecture (every CPU variant, chosen at load: the image meets CPUs nobody has seen); it is compiled once
and cached.

An image for another architecture (arm64 on an amd64 machine) is built here too: llama.cpp cross-compiled,
the dependencies' wheels for the target from PyPI, and the root file system's programs run under QEMU's
user-mode emulation (qemu-user-static through binfmt_misc), which is checked before anything starts.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

from image.build_deb import build_deb
from image.build_disk_image import build_disk_image
from image.build_rootfs import build_rootfs
from image.image_types import DEBIAN_ARCH

_ROOT = Path(__file__).resolve().parent.parent
_BINFMT = Path("/proc/sys/fs/binfmt_misc")


def _check_binfmt(arch: str, binfmt: Path = _BINFMT) -> None:
    """ValueError, saying what to install or enable, unless this kernel runs `arch`'s programs through QEMU
    with the fix-binary flag (F: the emulator is opened once, so it also runs inside mmdebstrap's chroot)."""
    machine = next(name for name, debian in DEBIAN_ARCH.items() if debian == arch)
    entry = binfmt / f"qemu-{machine}"
    install = (
        f"building an {arch} image on this machine runs {arch} programs (mmdebstrap's package scripts) through "
        "QEMU: apt install qemu-user-static binfmt-support"
    )
    if not (binfmt / "status").exists():
        raise ValueError(f"{install}; binfmt_misc is not mounted (mount -t binfmt_misc binfmt_misc {binfmt})")
    if not entry.exists():
        raise ValueError(f"{install} (no {entry}; then: update-binfmts --enable qemu-{machine})")
    text = entry.read_text(encoding="utf-8")
    if not text.startswith("enabled"):
        raise ValueError(f"{entry} is disabled: update-binfmts --enable qemu-{machine}")
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        raise ValueError(
            f"{entry} lacks the F (fix-binary) flag, so QEMU is not found inside a chroot: install "
            "qemu-user-static (its binfmt entries have it), not qemu-user's"
        )


def _report(started: float):
    def report(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    return report


def _find_llama_wheel(target: str, report) -> Path:
    # The same front door as scripts/dev: the wheel from the cache, or compiled now (its progress on stderr).
    report(
        f"llama.cpp for {target}: from the cache, or compiled now (generic: about 25 minutes on 2 cores, "
        "35 cross-compiled for arm64)"
    )
    result = subprocess.run(
        [sys.executable, "-m", "appliance.engine.llama_cpp.build_llama_wheel", "--target", target],
        stdout=subprocess.PIPE,
        text=True,
        cwd=_ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"llama.cpp could not be compiled for {target} (see above)")
    return Path(result.stdout.strip().splitlines()[-1])


def build_image(argv: list[str] | None = None) -> int:
    """Build the image the arguments describe; print its path; 0, or 1/2 with the reason on stderr."""
    parser = argparse.ArgumentParser(prog="scripts/dev image", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=DEBIAN_ARCH.get(platform.machine(), "amd64"), choices=("amd64", "arm64"))
    parser.add_argument("--output", type=Path, default=_ROOT / "build" / "image", help="default build/image")
    wheel = parser.add_mutually_exclusive_group()
    wheel.add_argument("--llama-wheel", type=Path, help="a llama-cpp-python wheel to put in the package")
    wheel.add_argument("--llama-target", help="compile llama.cpp for this target (default generic-<arch>)")
    parser.add_argument("--suite", default="bookworm", help="Debian release (default bookworm)")
    parser.add_argument("--mirror", help="Debian mirror (default: mmdebstrap's, deb.debian.org)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("scripts/dev image: run it as root (mmdebstrap, and files owned by the unit's users)", file=sys.stderr)
        return 2
    if DEBIAN_ARCH.get(platform.machine()) != args.arch:
        try:
            _check_binfmt(args.arch)
        except ValueError as exc:
            print(f"scripts/dev image: {exc}", file=sys.stderr)
            return 2
    report = _report(time.monotonic())
    try:
        llama_wheel = args.llama_wheel
        if llama_wheel is None:
            llama_wheel = _find_llama_wheel(args.llama_target or f"generic-{args.arch}", report)
        machine = next(name for name, debian in DEBIAN_ARCH.items() if debian == args.arch)
        if not llama_wheel.name.endswith(f"-linux_{machine}.whl"):
            raise ValueError(f"{llama_wheel.name} is not for {args.arch} (a linux_{machine} wheel)")
        package = build_deb(_ROOT, llama_wheel, args.output, progress=report)
        report(f"package: {package.path} ({len(package.wheels)} wheels)")
        root_uuid, esp_uuid = str(uuid.uuid4()), secrets.token_hex(4).upper()
        esp_uuid = f"{esp_uuid[:4]}-{esp_uuid[4:]}"
        rootfs = build_rootfs(
            package.path,
            args.output / f"rootfs-{args.arch}",
            arch=args.arch,
            suite=args.suite,
            mirror=args.mirror,
            root_uuid=root_uuid,
            esp_uuid=esp_uuid,
            progress=report,
        )
        image = args.output / f"iplm-{package.version}-{args.arch}.img"
        build_disk_image(rootfs, image, arch=args.arch, root_uuid=root_uuid, esp_uuid=esp_uuid, progress=report)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"scripts/dev image: {exc}", file=sys.stderr)
        return 1
    report(f"done: {image} ({image.stat().st_size / 2**30:.1f} GiB); root file system in {rootfs}")
    print(image)
    return 0


if __name__ == "__main__":
    sys.exit(build_image())
