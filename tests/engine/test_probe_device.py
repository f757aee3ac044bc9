"""probe_device on fake filesystem trees: Jetson Orin, RK3588 + Mali, desktop NVIDIA, plain x86, garbage."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from appliance.engine import probe_device as probe_module
from appliance.engine.device_profile import DeviceProfile
from appliance.engine.probe_device import probe_device

_ORIN_MEMINFO = "MemTotal:       15657184 kB\nMemFree:          812456 kB\nMemAvailable:   11834512 kB\n"
_RK3588_MEMINFO = "MemTotal:        7907712 kB\nMemFree:         5120000 kB\n"
_DESKTOP_MEMINFO = "MemTotal:       65759880 kB\nMemFree:        40000000 kB\n"
_SMALL_MEMINFO = "MemTotal:        2009876 kB\n"


def _write(root, path: str, data) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        target.write_bytes(data)
    else:
        target.write_text(data)


def _make_cpuinfo(cores: int, arm: bool) -> str:
    if arm:
        block = (
            "processor\t: {i}\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
            "CPU implementer\t: 0x41\n\n"
        )
    else:
        block = "processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7\ncpu cores\t: 4\n\n"
    return "".join(block.format(i=i) for i in range(cores))


@pytest.fixture(autouse=True)
def _hide_mlc(monkeypatch):
    # None in sys.modules makes find_spec report "not installed", whatever this machine has.
    monkeypatch.setitem(sys.modules, "mlc_llm", None)


@pytest.fixture(autouse=True)
def _forbid_nvidia_smi(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("probe_device must not run nvidia-smi on a fake root")

    monkeypatch.setattr(probe_module.subprocess, "run", refuse)


def test_jetson_orin(tmp_path):
    _write(tmp_path, "/proc/meminfo", _ORIN_MEMINFO)
    _write(tmp_path, "/proc/cpuinfo", _make_cpuinfo(12, arm=True))
    _write(tmp_path, "/proc/device-tree/model", b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    _write(
        tmp_path,
        "/proc/device-tree/compatible",
        b"nvidia,p3737-0000+p3701-0005\x00nvidia,p3701-0005\x00nvidia,tegra234\x00",
    )
    _write(tmp_path, "/etc/nv_tegra_release", "# R36 (release), REVISION: 3.0, GCID: 36923193\n")

    profile = probe_device(str(tmp_path), machine="aarch64")

    assert profile == DeviceProfile(
        board="jetson-orin",
        cpu_cores=12,
        memory_bytes=15657184 * 1024,
        gpu_kind="cuda",
        gpu_name="NVIDIA Jetson AGX Orin Developer Kit",
        gpu_memory_bytes=15657184 * 1024,
        mlc_available=False,
    )


def test_jetson_marked_only_by_nv_tegra_release(tmp_path):
    _write(tmp_path, "/proc/meminfo", _RK3588_MEMINFO)
    _write(tmp_path, "/proc/cpuinfo", _make_cpuinfo(6, arm=True))
    _write(tmp_path, "/etc/nv_tegra_release", "# R35 (release), REVISION: 4.1\n")

    profile = probe_device(str(tmp_path), machine="aarch64")

    assert (profile.board, profile.gpu_kind, profile.gpu_name) == ("jetson-orin", "cuda", "NVIDIA Jetson")
    assert profile.gpu_memory_bytes == 7907712 * 1024


def test_rk3588_with_mali(tmp_path):
    _write(tmp_path, "/proc/meminfo", _RK3588_MEMINFO)
    _write(tmp_path, "/proc/cpuinfo", _make_cpuinfo(8, arm=True))
    _write(tmp_path, "/proc/device-tree/model", b"Orange Pi 5\x00")
    _write(tmp_path, "/proc/device-tree/compatible", b"rockchip,rk3588s-orangepi-5\x00rockchip,rk3588s\x00")
    _write(tmp_path, "/dev/mali0", b"")

    profile = probe_device(str(tmp_path), machine="aarch64")

    assert profile == DeviceProfile(
        board="rk3588",
        cpu_cores=8,
        memory_bytes=7907712 * 1024,
        gpu_kind="opencl",
        gpu_name="Mali-G610",
        gpu_memory_bytes=7907712 * 1024,
        mlc_available=False,
    )


def test_rk3588_without_mali_driver_has_no_gpu(tmp_path):
    _write(tmp_path, "/proc/meminfo", _RK3588_MEMINFO)
    _write(tmp_path, "/proc/cpuinfo", _make_cpuinfo(8, arm=True))
    _write(tmp_path, "/proc/device-tree/compatible", b"radxa,rock-5b\x00rockchip,rk3588\x00")

    profile = probe_device(str(tmp_path), machine="aarch64")

    assert (profile.board, profile.gpu_kind, profile.gpu_name, profile.gpu_memory_bytes) == ("rk3588", "none", "", 0)


def test_other_mali_board_via_sysfs(tmp_path):
    _write(tmp_path, "/proc/meminfo", _SMALL_MEMINFO)
    _write(tmp_path, "/proc/cpuinfo", _make_cpuinfo(4, arm=True))
    _write(tmp_path, "/proc/device-tree/compatible", b"rockchip,rk3566\x00")
    (tmp_path / "sys/class/misc/mali0").mkdir(parents=True)

    profile = probe_device(str(tmp_path), machine="aarch64")

    assert (profile.board, profile.gpu_kind, profile.gpu_name) == ("generic-aarch64", "opencl", "Mali")


def test_desktop_nvidia(tmp_path):
    _write(tmp_path, "/proc/meminfo", _DESKTOP_MEMINFO)
    _write(tmp_path, "/proc/cpuinfo", _make_cpuinfo(16, arm=False))
    _write(
        tmp_path,
        "/proc/driver/nvidia/gpus/0000:01:00.0/information",
        "Model: \t\t NVIDIA GeForce RTX 3090\nIRQ:   \t\t 140\nGPU UUID: \t GPU-5e4c\nBus Type: \t PCIe\n",
    )

    profile = probe_device(str(tmp_path), machine="x86_64")

    assert profile == DeviceProfile(
        board="generic-x86_64",
        cpu_cores=16,
        memory_bytes=65759880 * 1024,
        gpu_kind="cuda",
        gpu_name="NVIDIA GeForce RTX 3090",
        gpu_memory_bytes=0,  # /proc does not say, and nvidia-smi is for the live system only
        mlc_available=False,
    )


def test_plain_x86_box(tmp_path):
    _write(tmp_path, "/proc/meminfo", _DESKTOP_MEMINFO)
    _write(tmp_path, "/proc/cpuinfo", _make_cpuinfo(4, arm=False))

    profile = probe_device(str(tmp_path), machine="x86_64")

    assert profile == DeviceProfile(
        board="generic-x86_64",
        cpu_cores=4,
        memory_bytes=65759880 * 1024,
        gpu_kind="none",
        gpu_name="",
        gpu_memory_bytes=0,
        mlc_available=False,
    )


def test_garbage_files_give_defaults(tmp_path):
    _write(tmp_path, "/proc/meminfo", b"MemTotal: lots kB\n\xff\xfe\x00garbage")
    _write(tmp_path, "/proc/cpuinfo", b"\x00\x01\x02 no processors here \xff")
    _write(tmp_path, "/proc/device-tree/model", b"\xff\xfe\xfd")
    _write(tmp_path, "/proc/device-tree/compatible", b"\x00\x00\x00")
    # An information file without a Model line: still a desktop NVIDIA GPU, unnamed.
    _write(tmp_path, "/proc/driver/nvidia/gpus/0000:02:00.0/information", "IRQ: 17\n")

    profile = probe_device(str(tmp_path), machine="riscv64")

    assert profile == DeviceProfile(
        board="generic-riscv64",
        cpu_cores=1,
        memory_bytes=0,
        gpu_kind="cuda",
        gpu_name="NVIDIA GPU",
        gpu_memory_bytes=0,
        mlc_available=False,
    )


def test_empty_tree(tmp_path):
    profile = probe_device(str(tmp_path), machine="aarch64")

    assert profile == DeviceProfile("generic-aarch64", 1, 0, "none", "", 0, False)


def test_directories_where_files_should_be(tmp_path):
    for path in ("proc/meminfo", "proc/cpuinfo", "proc/device-tree/model", "proc/device-tree/compatible"):
        (tmp_path / path).mkdir(parents=True)

    assert probe_device(str(tmp_path), machine="x86_64") == DeviceProfile("generic-x86_64", 1, 0, "none", "", 0, False)


def test_meminfo_without_memtotal(tmp_path):
    _write(tmp_path, "/proc/meminfo", "MemFree: 1000 kB\nMemTotal:\n")

    assert probe_device(str(tmp_path), machine="x86_64").memory_bytes == 0


def test_mlc_available_when_importable(tmp_path, monkeypatch):
    fake = types.ModuleType("mlc_llm")
    fake.__spec__ = None  # as a module installed by hand into sys.modules
    monkeypatch.setitem(sys.modules, "mlc_llm", fake)

    assert probe_device(str(tmp_path), machine="x86_64").mlc_available is True


def test_live_root_queries_nvidia_smi(tmp_path, monkeypatch):
    # Only root "/" asks nvidia-smi; read the GPU files from a fake tree by redirecting the glob.
    calls = []

    def run(args, **kwargs):
        calls.append((args, kwargs.get("timeout")))
        return subprocess.CompletedProcess(args, 0, stdout="24576\n", stderr="")

    info = tmp_path / "information"
    info.write_text("Model: \t\t NVIDIA RTX A5000\n")
    monkeypatch.setattr(probe_module.subprocess, "run", run)
    monkeypatch.setattr(probe_module.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(probe_module.glob, "glob", lambda pattern: [str(info)])
    monkeypatch.setattr(probe_module, "_detect_jetson", lambda *args: False)
    monkeypatch.setattr(probe_module, "_detect_mali", lambda root: False)

    profile = probe_device("/", machine="x86_64")

    assert (profile.gpu_kind, profile.gpu_name, profile.gpu_memory_bytes) == (
        "cuda",
        "NVIDIA RTX A5000",
        24576 * 1024**2,
    )
    assert calls == [(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"], 3)]
    assert profile.cpu_cores >= 1


def test_live_root_survives_failing_nvidia_smi(tmp_path, monkeypatch):
    def run(args, **kwargs):
        raise subprocess.TimeoutExpired(args, 3)

    info = tmp_path / "information"
    info.write_text("Model: \t\t NVIDIA RTX A5000\n")
    monkeypatch.setattr(probe_module.subprocess, "run", run)
    monkeypatch.setattr(probe_module.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(probe_module.glob, "glob", lambda pattern: [str(info)])
    monkeypatch.setattr(probe_module, "_detect_jetson", lambda *args: False)
    monkeypatch.setattr(probe_module, "_detect_mali", lambda root: False)

    assert probe_device("/", machine="x86_64").gpu_memory_bytes == 0
