"""Find out what board this is: CPU cores, memory, GPU kind, and whether MLC LLM is installed."""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import shutil
import subprocess
import sys

from appliance.engine.device_profile import DeviceProfile

# Enough for any real /proc or device-tree file; a garbage file must not eat memory.
_READ_LIMIT = 1 << 20


def _locate(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(_READ_LIMIT).decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return ""


def _read_text(root: str, path: str) -> str:
    return _read_file(_locate(root, path))


def _read_memory_bytes(root: str) -> int:
    for line in _read_text(root, "/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        if name.strip() != "MemTotal":
            continue
        fields = rest.split()
        if not fields or not fields[0].isdigit():
            return 0
        # The kernel always writes kB (KiB) here.
        return int(fields[0]) * 1024
    return 0


def _count_cpu_cores(root: str) -> int:
    text = _read_text(root, "/proc/cpuinfo")
    count = sum(1 for line in text.splitlines() if line.partition(":")[0].strip() == "processor" and ":" in line)
    if count == 0 and root == "/":
        # Only the live system may fall back to Python's view; a fake tree speaks for itself.
        count = os.cpu_count() or 1
    return max(1, count)


def _read_device_tree(root: str) -> tuple[str, tuple[str, ...]]:
    model = _read_text(root, "/proc/device-tree/model").replace("\x00", "").strip()
    compatible = tuple(
        entry.strip() for entry in _read_text(root, "/proc/device-tree/compatible").split("\x00") if entry.strip()
    )
    return model, compatible


def _detect_jetson(root: str, model: str, compatible: tuple[str, ...]) -> bool:
    return (
        "NVIDIA Jetson" in model
        or "nvidia,tegra234" in compatible
        or os.path.exists(_locate(root, "/etc/nv_tegra_release"))
    )


def _detect_rk3588(compatible: tuple[str, ...]) -> bool:
    return "rockchip,rk3588" in compatible or "rockchip,rk3588s" in compatible


def _detect_mali(root: str) -> bool:
    return os.path.exists(_locate(root, "/dev/mali0")) or os.path.exists(_locate(root, "/sys/class/misc/mali0"))


def _read_nvidia_model(root: str) -> str | None:
    """The first desktop NVIDIA GPU's model name, "" when unnamed, None when there is no driver."""
    pattern = os.path.join(glob.escape(_locate(root, "/proc/driver/nvidia/gpus")), "*", "information")
    files = sorted(glob.glob(pattern))
    if not files:
        return None
    for line in _read_file(files[0]).splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Model":
            return value.strip()
    return ""


def _query_nvidia_memory_bytes() -> int:
    # Best effort: nvidia-smi may be missing, hung or print anything; memory then stays unknown (0).
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
        first = result.stdout.strip().splitlines()[0].strip() if result.returncode == 0 else ""
        return int(float(first) * 1024 * 1024) if first else 0
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return 0


def _detect_mlc() -> bool:
    try:
        return importlib.util.find_spec("mlc_llm") is not None
    except (ImportError, ValueError):
        # find_spec raises ValueError for a module already imported without a spec: it is there.
        return sys.modules.get("mlc_llm") is not None


def probe_device(root: str = "/", *, machine: str | None = None) -> DeviceProfile:
    """Read the board, CPU, memory and GPU from the files under `root`; never raises, unknowns become defaults."""
    machine = platform.machine() if machine is None else machine
    memory_bytes = _read_memory_bytes(root)
    cpu_cores = _count_cpu_cores(root)
    model, compatible = _read_device_tree(root)
    is_rk3588 = _detect_rk3588(compatible)

    if _detect_jetson(root, model, compatible):
        board, gpu_kind, gpu_name, gpu_memory = "jetson-orin", "cuda", model or "NVIDIA Jetson", memory_bytes
    elif _detect_mali(root):
        # Mali shares system memory with the CPU.
        board = "rk3588" if is_rk3588 else f"generic-{machine or 'unknown'}"
        gpu_kind, gpu_name, gpu_memory = "opencl", "Mali-G610" if is_rk3588 else "Mali", memory_bytes
    else:
        board = "rk3588" if is_rk3588 else f"generic-{machine or 'unknown'}"
        nvidia_model = _read_nvidia_model(root)
        if nvidia_model is None:
            gpu_kind, gpu_name, gpu_memory = "none", "", 0
        else:
            gpu_kind, gpu_name = "cuda", nvidia_model or "NVIDIA GPU"
            gpu_memory = _query_nvidia_memory_bytes() if root == "/" else 0

    return DeviceProfile(
        board=board,
        cpu_cores=cpu_cores,
        memory_bytes=memory_bytes,
        gpu_kind=gpu_kind,
        gpu_name=gpu_name,
        gpu_memory_bytes=gpu_memory,
        mlc_available=_detect_mlc(),
    )
