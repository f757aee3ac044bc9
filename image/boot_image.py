"""Power a built image on in QEMU under UEFI firmware, as a card in a unit: amd64 on OVMF, arm64 on AAVMF.

    python -m image.boot_image IMAGE [--arch arm64] [--chat] [--timeout 1800]

boots it, waits for the portal to answer on the guest's port 80 (forwarded to a loopback port), optionally
asks the default model for a short chat, prints the times and powers it off. The built image is never
written: the VM runs on a qcow2 overlay. TCG only (this kind of machine has no KVM, and an arm64 image needs
emulation on an amd64 one anyway); the guest reaches nothing outside, only its portal is forwarded in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from image.image_types import DEBIAN_ARCH, RunningVm

# (code, variables template, the Debian package that has them).
_FIRMWARE = {
    "amd64": (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd"), "ovmf"),
    "arm64": (Path("/usr/share/AAVMF/AAVMF_CODE.fd"), Path("/usr/share/AAVMF/AAVMF_VARS.fd"), "qemu-efi-aarch64"),
}
# pauth-impdef: the guest's pointer authentication with QEMU's cheap hash instead of QARMA, which costs TCG
# a large share of its speed; the guest cannot tell the difference.
_MACHINE = {
    "amd64": ("qemu-system-x86_64", "qemu-system-x86", ["-machine", "q35", "-cpu", "max"]),
    "arm64": ("qemu-system-aarch64", "qemu-system-arm", ["-machine", "virt", "-cpu", "max,pauth-impdef=on"]),
}


def _pick_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def boot_image(image: Path, work: Path, *, arch: str, growth: int = 0, memory_mib: int = 3072) -> Iterator[RunningVm]:
    """Power on `image` (an `arch` disk image) through a qcow2 overlay in `work`, `growth` bytes bigger than the
    image (first boot grows the root into it); power it off when the block ends. ValueError for a missing
    image, emulator or firmware (naming the Debian package)."""
    if arch not in _MACHINE:
        raise ValueError(f"arch {arch!r}: amd64 or arm64")
    emulator, emulator_package, machine = _MACHINE[arch]
    code, variables, firmware_package = _FIRMWARE[arch]
    if not image.is_file():
        raise ValueError(f"no image at {image}")
    for tool, package in ((emulator, emulator_package), ("qemu-img", "qemu-utils")):
        if shutil.which(tool) is None:
            raise ValueError(f"{tool} is not installed (Debian: apt install {package})")
    if not code.is_file():
        raise ValueError(f"no UEFI firmware at {code} (Debian: apt install {firmware_package})")
    work.mkdir(parents=True, exist_ok=True)
    vars_file = work / "vars.fd"
    shutil.copyfile(variables, vars_file)
    overlay = work / "disk.qcow2"
    overlay.unlink(missing_ok=True)
    size = image.stat().st_size + growth
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.resolve()), str(overlay), str(size)],
        check=True,
    )
    port = _pick_port()
    serial = work / "serial.log"
    serial.unlink(missing_ok=True)
    command = [
        emulator, *machine, "-accel", "tcg", "-smp", "2", "-m", str(memory_mib),
        "-display", "none", "-monitor", "none", "-serial", f"file:{serial}",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}",
        "-drive", f"file={overlay},format=qcow2,if=virtio",
        # restrict=on: the guest reaches nothing outside; only the portal is forwarded in, on loopback.
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:80",
        "-device", "virtio-net-pci,netdev=net0",
    ]  # fmt: skip
    with open(work / "qemu.log", "wb") as qemu_log:  # QEMU's own complaints (bad firmware, no memory)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=qemu_log)
    try:
        yield RunningVm(process=process, base=f"http://127.0.0.1:{port}", serial=serial, started=time.monotonic())
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        overlay.unlink(missing_ok=True)


def _wait_for_portal(vm: RunningVm, timeout_s: float, report: Callable[[str], None]) -> float | None:
    """Seconds from power-on until GET / answers 200, or None (timed out, or QEMU ended)."""
    said = 0.0
    while time.monotonic() - vm.started < timeout_s and vm.process.poll() is None:
        try:
            with urllib.request.urlopen(f"{vm.base}/", timeout=5) as page:
                if page.status == 200:
                    return time.monotonic() - vm.started
        except (urllib.error.URLError, OSError):
            pass
        elapsed = time.monotonic() - vm.started
        if elapsed - said >= 60:
            said = elapsed
            lines = vm.serial.read_text(errors="replace").strip().splitlines() if vm.serial.exists() else []
            report(f"  {elapsed:5.0f} s: no portal yet; serial: {lines[-1][-100:] if lines else '(nothing yet)'}")
        time.sleep(3)
    return None


def _ask_chat(vm: RunningVm, timeout_s: float) -> tuple[float, str]:
    """The OpenAI API's answer to a short chat (anonymous, as any phone): seconds taken and its text."""
    body = json.dumps({"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8}).encode()
    request = urllib.request.Request(
        f"{vm.base}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            answer = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"the chat was refused: HTTP {exc.code} {exc.read()[:500]!r}") from exc
    return time.monotonic() - started, str(answer["choices"][0]["message"]["content"])


def _report(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="boot_image", description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--arch", default=DEBIAN_ARCH.get(platform.machine(), "amd64"), choices=("amd64", "arm64"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the portal (default 1800)")
    parser.add_argument("--chat", action="store_true", help="then ask the default model a short chat")
    parser.add_argument("--chat-timeout", type=float, default=900, help="seconds for the chat (default 900)")
    parser.add_argument("--work", type=Path, help="where the overlay and serial.log go (default: a temp folder)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="iplm-vm-", dir="/var/tmp"))
    try:
        with boot_image(args.image, work, arch=args.arch, growth=1 << 30) as vm:
            _report(f"powered on {args.image.name} ({args.arch}, QEMU TCG, 2 vCPUs); serial line: {vm.serial}")
            boot_s = _wait_for_portal(vm, args.timeout, _report)
            if boot_s is None:
                tail = vm.serial.read_text(errors="replace")[-3000:] if vm.serial.exists() else ""
                qemu = (work / "qemu.log").read_text(errors="replace")[-1000:]
                _report(f"the portal never answered within {args.timeout:.0f} s; QEMU: {qemu or 'running'}; "
                        f"the serial line's end:\n{tail}")  # fmt: skip
                return 1
            _report(f"power-on to portal answering: {boot_s:.0f} s")
            print(json.dumps({"boot_to_portal_s": round(boot_s)}))
            if args.chat:
                _report("asking the default model: 'Say hi' (8 tokens at most)")
                chat_s, text = _ask_chat(vm, args.chat_timeout)
                _report(f"chat answered in {chat_s:.0f} s: {text!r}")
                print(json.dumps({"chat_s": round(chat_s), "reply": text}))
    except (ValueError, RuntimeError, OSError) as exc:
        _report(f"boot_image: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
