"""Find out which board and toolchain an MLC model library built on this unit is for."""

from __future__ import annotations

import json
import os
import re
from importlib import metadata

from appliance.engine.device_profile import DeviceProfile
from appliance.engine.mlc.library_target import LibraryTarget

# Enough for any real release or version file; a garbage file must not eat memory.
_READ_LIMIT = 1 << 16
# Boards whose class fixes the GPU: one library fits every unit of the class.
_FIXED_GPU_BOARDS = ("jetson-orin", "rk3588")
# "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: ..."
_TEGRA_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  ..." or "... Open Kernel Module for aarch64  540.4.0 ..."
_NVIDIA_DRIVER = re.compile(r"\b(\d+\.\d+(?:\.\d+)*)\b")
_CUDA_TEXT = re.compile(r"CUDA Version\s+(\d+(?:\.\d+)*)")
# The kbase module is "mali_kbase" upstream and "bifrost_kbase" in Rockchip's BSP kernels.
_KBASE_MODULES = ("mali_kbase", "bifrost_kbase")
_LIB_DIRS = ("/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib")
# MLC's wheels are "mlc-llm-nightly-cu122", "mlc-llm-cpu"...; source builds (jetson-containers) are
# "mlc-llm"; before 0.1 the package was mlc_chat. TVM comes as "mlc-ai-nightly-cu122"... from MLC's
# index, "tvm" from source, "apache-tvm" from PyPI; recent TVM adds "apache-tvm-ffi".
_MLC_NAMES, _MLC_PREFIXES = ("mlc-llm", "mlc-chat"), ("mlc-llm-", "mlc-chat-")
_TVM_NAMES, _TVM_PREFIXES = ("tvm", "apache-tvm", "mlc-ai", "apache-tvm-ffi"), ("mlc-ai-",)


def _locate(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read_text(root: str, path: str) -> str:
    try:
        with open(_locate(root, path), "rb") as handle:
            return handle.read(_READ_LIMIT).decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return ""


def _read_os_release(root: str) -> str:
    text = _read_text(root, "/etc/os-release") or _read_text(root, "/usr/lib/os-release")
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip()] = value.strip().strip("\"'")
    version = fields.get("VERSION_ID") or fields.get("VERSION_CODENAME", "")
    return " ".join(part for part in (fields.get("ID", ""), version) if part)


def _read_l4t_release(root: str) -> str:
    match = _TEGRA_RELEASE.search(_read_text(root, "/etc/nv_tegra_release"))
    return f"L4T {match.group(1)}.{match.group(2)}" if match else ""


def _read_cuda_toolkit(root: str) -> str:
    try:
        version = json.loads(_read_text(root, "/usr/local/cuda/version.json") or "null")["cuda"]["version"]
        if isinstance(version, str) and version.strip():
            return f"CUDA {version.strip()}"
    except (ValueError, TypeError, KeyError):
        pass
    # CUDA 10 and older wrote version.txt instead.
    match = _CUDA_TEXT.search(_read_text(root, "/usr/local/cuda/version.txt"))
    return f"CUDA {match.group(1)}" if match else ""


def _read_nvidia_driver(root: str) -> str:
    for line in _read_text(root, "/proc/driver/nvidia/version").splitlines():
        if line.startswith("NVRM version:"):
            match = _NVIDIA_DRIVER.search(line.partition("Module")[2])
            return f"NVIDIA {match.group(1)}" if match else ""
    return ""


def _list_mali_blobs(root: str) -> list[str]:
    # The real file's name carries the release ("libmali-valhall-g610-g13p0-x11-wayland-gbm.so");
    # libmali.so.1 and friends are symlinks to it.
    names: set[str] = set()
    for directory in _LIB_DIRS:
        try:
            entries = list(os.scandir(_locate(root, directory)))
        except OSError:
            continue
        names.update(
            entry.name
            for entry in entries
            if entry.name.startswith("libmali") and ".so" in entry.name and entry.is_file(follow_symlinks=False)
        )
    return sorted(names)


def _read_mali_driver(root: str) -> str:
    parts = []
    for module in _KBASE_MODULES:
        version = _read_text(root, f"/sys/module/{module}/version").strip()
        if version:
            parts.append(f"{module} {version}")
    return "; ".join(parts + _list_mali_blobs(root))


def _read_distributions() -> dict[str, str]:
    """Normalized distribution name -> version, of what this interpreter can import; nothing is imported."""
    found: dict[str, str] = {}
    try:
        distributions = list(metadata.distributions())
    except Exception:  # a broken site-packages must not stop the probe
        return found
    for distribution in distributions:
        try:
            name, version = distribution.metadata["Name"], distribution.version
        except Exception:
            continue
        if isinstance(name, str) and isinstance(version, str):
            # The first one on sys.path is the one an import would load.
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), version)
    return found


def _pick_versions(found: dict[str, str], names: tuple[str, ...], prefixes: tuple[str, ...]) -> str:
    picked = sorted(name for name in found if name in names or name.startswith(prefixes))
    return ", ".join(f"{name}=={found[name]}" for name in picked)


def probe_library_target(profile: DeviceProfile, root: str = "/", *, device: str | None = None) -> LibraryTarget:
    """The target a library compiled here now would have; reads files under `root`, never imports MLC or TVM.

    `device`: the MLC device the engine opens, when it is not the profile's GPU kind.
    """
    if device in (None, "", "auto"):
        # "auto" is MLC's choice at open time; the profile's GPU kind is what it picks on these boards.
        device = profile.gpu_kind if profile.gpu_kind != "none" else "cpu"
    board = profile.board if profile.board in _FIXED_GPU_BOARDS else f"{profile.board}:{profile.gpu_name}"
    platform_parts = [_read_os_release(root), _read_l4t_release(root)]
    if device == "cuda":
        platform_parts.append(_read_cuda_toolkit(root))
    driver = _read_mali_driver(root) if device == "opencl" else _read_nvidia_driver(root)
    found = _read_distributions()
    return LibraryTarget(
        board=board,
        device=device,
        platform_version="; ".join(part for part in platform_parts if part),
        driver=driver,
        mlc_version=_pick_versions(found, _MLC_NAMES, _MLC_PREFIXES),
        tvm_version=_pick_versions(found, _TVM_NAMES, _TVM_PREFIXES),
    )
