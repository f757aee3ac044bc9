"""MLC model libraries: probing the target on fake trees, keeping and choosing libraries, finding JIT output."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.engine.device_profile import DeviceProfile
from appliance.engine.engine_types import EngineError
from appliance.engine.mlc import keep_model_library as keep_module
from appliance.engine.mlc import probe_library_target as probe_module
from appliance.engine.mlc.choose_model_library import choose_model_library
from appliance.engine.mlc.find_jit_library import find_jit_library
from appliance.engine.mlc.keep_model_library import keep_model_library
from appliance.engine.mlc.library_target import LIBS_DIR, TARGET_FILE, LibraryTarget
from appliance.engine.mlc.probe_library_target import probe_library_target

MODEL = "Toy-q4f16_1-MLC"
ORIN = DeviceProfile(
    board="jetson-orin",
    cpu_cores=12,
    memory_bytes=16 << 30,
    gpu_kind="cuda",
    gpu_name="NVIDIA Jetson AGX Orin Developer Kit",
    gpu_memory_bytes=16 << 30,
    mlc_available=True,
)
RK3588 = DeviceProfile(
    board="rk3588",
    cpu_cores=8,
    memory_bytes=8 << 30,
    gpu_kind="opencl",
    gpu_name="Mali-G610",
    gpu_memory_bytes=8 << 30,
    mlc_available=True,
)
DESKTOP = DeviceProfile(
    board="generic-x86_64",
    cpu_cores=16,
    memory_bytes=64 << 30,
    gpu_kind="cuda",
    gpu_name="NVIDIA GeForce RTX 4090",
    gpu_memory_bytes=24 << 30,
    mlc_available=True,
)
TARGET = LibraryTarget(
    board="jetson-orin",
    device="cuda",
    platform_version="ubuntu 22.04; L4T 36.4.0; CUDA 12.6.68",
    driver="NVIDIA 540.4.0",
    mlc_version="mlc-llm==0.19.0",
    tvm_version="tvm==0.19.0",
)


class _FakeDistribution:
    def __init__(self, name: str, version: str):
        self.metadata = {"Name": name}
        self.version = version


def _write(root: Path, path: str, data) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        target.write_bytes(data)
    else:
        target.write_text(data)
    return target


def _make_library(path: Path, body: bytes = b"kernels") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF\x02\x01\x01" + body)
    return path


def _make_model_dir(path: Path, window: int = 4096) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "mlc-chat-config.json").write_text(
        json.dumps({"model_type": "llama", "quantization": "q4f16_1", "context_window_size": window})
    )
    return path


def _fake_distributions(monkeypatch, *pairs: tuple[str, str]) -> None:
    monkeypatch.setattr(
        probe_module.metadata, "distributions", lambda: [_FakeDistribution(name, version) for name, version in pairs]
    )


@pytest.fixture(autouse=True)
def _forbid_mlc_imports(monkeypatch):
    # None in sys.modules makes any import of them fail: the probe must only read metadata.
    monkeypatch.setitem(sys.modules, "mlc_llm", None)
    monkeypatch.setitem(sys.modules, "tvm", None)


# --- probe_library_target ---------------------------------------------------------------------------


def test_probe_jetson_orin(tmp_path, monkeypatch):
    _write(tmp_path, "/etc/os-release", 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n')
    _write(
        tmp_path,
        "/etc/nv_tegra_release",
        "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13\n",
    )
    _write(tmp_path, "/usr/local/cuda/version.json", json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}))
    _write(
        tmp_path,
        "/proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  540.4.0  Release Build  (buildbrain@mobile)\n"
        "GCC version:  collect2: error: ld returned 1 exit status\n",
    )
    _fake_distributions(monkeypatch, ("mlc-llm", "0.19.0"), ("tvm", "0.19.0"), ("numpy", "1.26.4"))

    assert probe_library_target(ORIN, str(tmp_path)) == TARGET


def test_probe_jetson_without_nvidia_proc_file_and_old_cuda(tmp_path, monkeypatch):
    _write(tmp_path, "/etc/os-release", "ID=ubuntu\nVERSION_ID=20.04\n")
    _write(tmp_path, "/etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n")
    _write(tmp_path, "/usr/local/cuda/version.txt", "CUDA Version 11.4.315\n")
    _fake_distributions(monkeypatch, ("mlc_llm", "0.1.dev1451+g0a1b2c3"), ("tvm", "0.18.dev249"))

    target = probe_library_target(ORIN, str(tmp_path))

    assert target.platform_version == "ubuntu 20.04; L4T 35.4.1; CUDA 11.4.315"
    assert target.driver == ""  # L4T fixes libcuda there
    assert (target.mlc_version, target.tvm_version) == ("mlc-llm==0.1.dev1451+g0a1b2c3", "tvm==0.18.dev249")


def test_probe_rk3588_mali(tmp_path, monkeypatch):
    _write(tmp_path, "/etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
    _write(tmp_path, "/sys/module/bifrost_kbase/version", "g18p0-01eac0\n")
    blob = _write(tmp_path, "/usr/lib/aarch64-linux-gnu/libmali-valhall-g610-g13p0-x11-wayland-gbm.so", b"\x7fELF")
    os.symlink(blob.name, blob.parent / "libmali.so.1")
    _write(tmp_path, "/usr/local/cuda/version.json", json.dumps({"cuda": {"version": "12.2.0"}}))  # not for opencl
    _fake_distributions(monkeypatch, ("mlc-llm", "0.19.0"), ("tvm", "0.19.0"), ("apache-tvm-ffi", "0.1.0"))

    target = probe_library_target(RK3588, str(tmp_path))

    assert target == LibraryTarget(
        board="rk3588",
        device="opencl",
        platform_version="debian 12",
        driver="bifrost_kbase g18p0-01eac0; libmali-valhall-g610-g13p0-x11-wayland-gbm.so",
        mlc_version="mlc-llm==0.19.0",
        tvm_version="apache-tvm-ffi==0.1.0, tvm==0.19.0",
    )


def test_probe_desktop_names_the_gpu_and_reads_wheel_names(tmp_path, monkeypatch):
    _write(tmp_path, "/etc/os-release", "ID=ubuntu\nVERSION_ID=24.04\n")
    _write(
        tmp_path,
        "/proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n",
    )
    _fake_distributions(monkeypatch, ("mlc-llm-nightly-cu122", "0.1.dev1500"), ("mlc-ai-nightly-cu122", "0.15.dev600"))

    target = probe_library_target(DESKTOP, str(tmp_path))

    assert target.board == "generic-x86_64:NVIDIA GeForce RTX 4090"
    assert target.driver == "NVIDIA 550.54.14"
    assert target.platform_version == "ubuntu 24.04"
    assert target.mlc_version == "mlc-llm-nightly-cu122==0.1.dev1500"
    assert target.tvm_version == "mlc-ai-nightly-cu122==0.15.dev600"


def test_probe_device_override_and_auto(tmp_path, monkeypatch):
    _fake_distributions(monkeypatch)
    assert probe_library_target(DESKTOP, str(tmp_path), device="vulkan").device == "vulkan"
    assert probe_library_target(DESKTOP, str(tmp_path), device="auto").device == "cuda"


def test_probe_empty_or_garbage_tree_gives_empty_fields(tmp_path, monkeypatch):
    _write(tmp_path, "/etc/nv_tegra_release", b"\xff\xfe garbage \x00" * 1000)
    _write(tmp_path, "/usr/local/cuda/version.json", "[1, 2")
    _write(tmp_path, "/proc/driver/nvidia/version", "NVRM version: nothing here\n")
    (tmp_path / "etc" / "os-release").mkdir()  # a directory where a file should be

    def broken():
        raise OSError("site-packages unreadable")

    monkeypatch.setattr(probe_module.metadata, "distributions", broken)

    target = probe_library_target(ORIN, str(tmp_path))

    assert target == LibraryTarget(
        board="jetson-orin", device="cuda", platform_version="", driver="", mlc_version="", tvm_version=""
    )


def test_probe_live_system_does_not_import_mlc():
    target = probe_library_target(ORIN)
    assert isinstance(target, LibraryTarget)
    assert sys.modules["mlc_llm"] is None and sys.modules["tvm"] is None


def test_target_key_is_a_safe_name_that_changes_with_every_field():
    keys = {TARGET.key}
    for field in dataclasses.fields(LibraryTarget):
        keys.add(dataclasses.replace(TARGET, **{field.name: getattr(TARGET, field.name) + "x"}).key)
    assert len(keys) == 1 + len(dataclasses.fields(LibraryTarget))
    odd = dataclasses.replace(TARGET, board="../generic-x86_64:NVIDIA GeForce/RTX", device="")
    assert "/" not in odd.key and not odd.key.startswith(".")


# --- keep_model_library and choose_model_library ---------------------------------------------------


def test_keep_then_choose_round_trip(tmp_path):
    data = tmp_path / "data"
    library = _make_library(tmp_path / "prebuilt" / "toy-cuda.so")

    kept = keep_model_library(data, MODEL, TARGET, library, "prebuilt")

    assert kept.parent == data / LIBS_DIR / MODEL / TARGET.key
    assert kept.read_bytes() == library.read_bytes()
    record = json.loads((kept.parent / TARGET_FILE).read_text())
    assert record["target"] == dataclasses.asdict(TARGET)
    assert record["sha256"] == hashlib.sha256(library.read_bytes()).hexdigest()
    assert (record["source"], record["library"], record["size"]) == ("prebuilt", kept.name, library.stat().st_size)
    assert choose_model_library(data, MODEL, TARGET) == str(kept)
    # The copy is the unit's own: the original (MLC's cache) may go away.
    library.unlink()
    assert choose_model_library(data, MODEL, TARGET) == str(kept)


def test_nothing_kept_chooses_none(tmp_path):
    assert choose_model_library(tmp_path, MODEL, TARGET) is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("board", "rk3588"),
        ("board", "generic-x86_64:NVIDIA GeForce RTX 3060"),
        ("device", "vulkan"),
        ("platform_version", "ubuntu 22.04; L4T 36.3.0; CUDA 12.2.140"),
        ("driver", "NVIDIA 540.3.0"),
        ("mlc_version", "mlc-llm==0.20.0"),
        ("tvm_version", "tvm==0.20.0"),
    ],
)
def test_a_library_for_another_target_is_never_chosen(tmp_path, field, value):
    other = dataclasses.replace(TARGET, **{field: value})
    keep_model_library(tmp_path, MODEL, other, _make_library(tmp_path / "lib.so"), "jit")

    assert choose_model_library(tmp_path, MODEL, TARGET) is None
    assert choose_model_library(tmp_path, MODEL, other) is not None


def test_a_library_moved_under_another_targets_key_is_not_chosen(tmp_path, caplog):
    other = dataclasses.replace(TARGET, driver="NVIDIA 540.3.0")
    kept = keep_model_library(tmp_path, MODEL, other, _make_library(tmp_path / "lib.so"), "jit")
    kept.parent.rename(kept.parent.parent / TARGET.key)

    with caplog.at_level(logging.WARNING, logger="iplm.library"):
        assert choose_model_library(tmp_path, MODEL, TARGET) is None
    assert "another target" in caplog.text


@pytest.mark.parametrize("damage", ["flip", "truncate", "grow", "delete", "symlink"])
def test_a_tampered_library_is_not_chosen(tmp_path, caplog, damage):
    kept = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "lib.so", b"k" * 5000), "jit")
    data = kept.read_bytes()
    if damage == "flip":
        kept.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncate":
        kept.write_bytes(data[:-1])
    elif damage == "grow":
        kept.write_bytes(data + b"\x00")
    elif damage == "delete":
        kept.unlink()
    else:
        elsewhere = _make_library(tmp_path / "elsewhere.so", b"k" * 5000)
        kept.unlink()
        kept.symlink_to(elsewhere)

    with caplog.at_level(logging.WARNING, logger="iplm.library"):
        assert choose_model_library(tmp_path, MODEL, TARGET) is None
    assert str(kept) in caplog.text


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[]", b"null", b'{"version": 1}', b"\xff\xfe\x00"])
def test_a_malformed_target_json_is_ignored(tmp_path, caplog, raw):
    kept = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "lib.so"), "jit")
    (kept.parent / TARGET_FILE).write_bytes(raw)

    with caplog.at_level(logging.WARNING, logger="iplm.library"):
        assert choose_model_library(tmp_path, MODEL, TARGET) is None
    assert "malformed" in caplog.text


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"library": "../../other/evil.so"},
        {"library": "/etc/passwd"},
        {"library": ".hidden.so"},
        {"library": 7},
        {"sha256": "abc"},
        {"sha256": None},
        {"size": "12"},
        {"size": True},
        {"source": "peer"},
        {"model_config_sha256": 5},
        {"target": {"board": "jetson-orin"}},
        {"target": {**dataclasses.asdict(TARGET), "driver": 540}},
        {"target": {**dataclasses.asdict(TARGET), "extra": ""}},
    ],
)
def test_a_record_with_wrong_fields_is_ignored(tmp_path, change):
    kept = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "lib.so"), "jit")
    path = kept.parent / TARGET_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))

    assert choose_model_library(tmp_path, MODEL, TARGET) is None


def test_a_huge_target_json_is_ignored(tmp_path):
    kept = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "lib.so"), "jit")
    record = json.loads((kept.parent / TARGET_FILE).read_text())
    (kept.parent / TARGET_FILE).write_text(json.dumps({**record, "padding": "x" * (1 << 17)}))

    assert choose_model_library(tmp_path, MODEL, TARGET) is None


def test_model_config_pins_the_library_to_the_model(tmp_path):
    model_dir = _make_model_dir(tmp_path / "models" / MODEL)
    kept = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "lib.so"), "jit", model_dir=model_dir)

    assert choose_model_library(tmp_path, MODEL, TARGET, model_dir=model_dir) == str(kept)
    _make_model_dir(model_dir, window=8192)  # the model was replaced under the same id
    assert choose_model_library(tmp_path, MODEL, TARGET, model_dir=model_dir) is None


def test_a_library_kept_without_model_config_is_not_chosen_for_a_model(tmp_path):
    model_dir = _make_model_dir(tmp_path / "models" / MODEL)
    keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "lib.so"), "prebuilt")

    assert choose_model_library(tmp_path, MODEL, TARGET, model_dir=model_dir) is None


def test_keeping_again_replaces_the_library_and_removes_the_old_one(tmp_path):
    first = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "a.so", b"first"), "prebuilt")
    second = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "b.so", b"second"), "jit")

    assert first != second and not first.exists()
    assert choose_model_library(tmp_path, MODEL, TARGET) == str(second)
    assert sorted(p.name for p in second.parent.iterdir()) == sorted([second.name, TARGET_FILE])


def test_keeping_the_same_library_twice_keeps_one_copy(tmp_path):
    library = _make_library(tmp_path / "a.so")
    first = keep_model_library(tmp_path, MODEL, TARGET, library, "jit")
    second = keep_model_library(tmp_path, MODEL, TARGET, first, "jit")

    assert first == second and second.read_bytes() == library.read_bytes()
    assert choose_model_library(tmp_path, MODEL, TARGET) == str(second)


def test_libraries_for_two_targets_live_side_by_side(tmp_path):
    mali = dataclasses.replace(TARGET, board="rk3588", device="opencl")
    cuda_lib = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "a.so", b"cuda"), "jit")
    mali_lib = keep_model_library(tmp_path, MODEL, mali, _make_library(tmp_path / "b.so", b"cl"), "prebuilt")

    assert choose_model_library(tmp_path, MODEL, TARGET) == str(cuda_lib)
    assert choose_model_library(tmp_path, MODEL, mali) == str(mali_lib)


@pytest.mark.parametrize("model_id", ["", "../x", "a/b", ".hidden", "x.lock", "a" * 129, None])
def test_bad_model_ids_are_refused(tmp_path, model_id):
    with pytest.raises(EngineError) as caught:
        keep_model_library(tmp_path, model_id, TARGET, _make_library(tmp_path / "a.so"), "jit")
    assert caught.value.code == "invalid_model_id"
    with pytest.raises(EngineError):
        choose_model_library(tmp_path, model_id, TARGET)


def test_bad_sources_and_files_are_refused(tmp_path):
    library = _make_library(tmp_path / "a.so")
    with pytest.raises(EngineError, match="source"):
        keep_model_library(tmp_path, MODEL, TARGET, library, "peer")
    (tmp_path / "text.so").write_text("not a library")
    for bad in (tmp_path / "missing.so", tmp_path / "text.so", tmp_path):
        with pytest.raises(EngineError) as caught:
            keep_model_library(tmp_path / "data", MODEL, TARGET, bad, "prebuilt")
        assert caught.value.code == "library_invalid"
    assert choose_model_library(tmp_path / "data", MODEL, TARGET) is None


def _visible_libraries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.so")) if folder.exists() else []


def test_a_keep_that_dies_while_copying_leaves_no_library(tmp_path, monkeypatch):
    def die(fd):
        raise OSError("disk full")

    monkeypatch.setattr(keep_module.os, "fsync", die)
    with pytest.raises(OSError, match="disk full"):
        keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "a.so", b"x" * (3 << 20)), "jit")

    folder = tmp_path / LIBS_DIR / MODEL / TARGET.key
    assert _visible_libraries(folder) == [] and not (folder / TARGET_FILE).exists()
    assert [p.name for p in folder.iterdir()] == []  # its temporary file is gone too
    assert choose_model_library(tmp_path, MODEL, TARGET) is None


_KILLED_KEEP = """
import os, signal, sys
from appliance.engine.mlc import keep_model_library as keep_module
from appliance.engine.mlc.library_target import LibraryTarget
# SIGKILL at the first fsync: the library is fully written to its temporary file, not yet renamed.
keep_module.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
keep_module.keep_model_library(sys.argv[1], sys.argv[2], LibraryTarget(**{k: v for k, v in
    zip(("board", "device", "platform_version", "driver", "mlc_version", "tvm_version"), sys.argv[4:])}),
    sys.argv[3], "jit")
"""


def test_a_keep_killed_mid_copy_shows_no_library(tmp_path):
    library = _make_library(tmp_path / "a.so", b"x" * (3 << 20))
    fields = [getattr(TARGET, field.name) for field in dataclasses.fields(LibraryTarget)]
    result = subprocess.run(
        [sys.executable, "-c", _KILLED_KEEP, str(tmp_path), MODEL, str(library), *fields],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr

    folder = tmp_path / LIBS_DIR / MODEL / TARGET.key
    assert _visible_libraries(folder) == [] and not (folder / TARGET_FILE).exists()
    assert choose_model_library(tmp_path, MODEL, TARGET) is None
    kept = keep_model_library(tmp_path, MODEL, TARGET, library, "jit")
    assert sorted(p.name for p in folder.iterdir()) == sorted([kept.name, TARGET_FILE])


def test_a_keep_that_dies_before_its_record_leaves_the_previous_library(tmp_path, monkeypatch):
    old = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "a.so", b"old"), "prebuilt")

    def die(folder, record):
        raise OSError("power cut")

    monkeypatch.setattr(keep_module, "_write_record", die)
    with pytest.raises(OSError, match="power cut"):
        keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "b.so", b"new"), "jit")

    assert choose_model_library(tmp_path, MODEL, TARGET) == str(old)
    monkeypatch.undo()
    # The next keep clears what the dead one left.
    new = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "c.so", b"newer"), "jit")
    assert _visible_libraries(new.parent) == [new.name]


def test_stale_temporaries_of_a_crashed_keep_are_cleared(tmp_path):
    folder = tmp_path / LIBS_DIR / MODEL / TARGET.key
    folder.mkdir(parents=True)
    (folder / ".abc123.so.tmp").write_bytes(b"\x7fELF half")
    (folder / ".def456.json.tmp").write_text("{")

    kept = keep_model_library(tmp_path, MODEL, TARGET, _make_library(tmp_path / "a.so"), "jit")

    assert sorted(p.name for p in folder.iterdir()) == sorted([kept.name, TARGET_FILE])


def test_readers_never_see_a_half_written_library(tmp_path):
    versions = [b"A" * (4 << 20), b"B" * (4 << 20)]
    sources = [_make_library(tmp_path / f"{i}.so", body) for i, body in enumerate(versions)]
    whole = {source.read_bytes() for source in sources}
    keep_model_library(tmp_path, MODEL, TARGET, sources[0], "jit")
    stop = threading.Event()

    def keep_repeatedly():
        i = 0
        while not stop.is_set():
            keep_model_library(tmp_path, MODEL, TARGET, sources[i % 2], "jit")
            i += 1

    keeper = threading.Thread(target=keep_repeatedly)
    keeper.start()
    seen = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            chosen = choose_model_library(tmp_path, MODEL, TARGET)
            if chosen is None:
                continue  # replaced between reading the record and hashing: the engine would JIT
            try:
                content = Path(chosen).read_bytes()
            except FileNotFoundError:
                continue
            assert content in whole
            seen += 1
    finally:
        stop.set()
        keeper.join()
    assert seen > 0


# --- find_jit_library -------------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_find_prefers_the_path_mlc_reported(tmp_path):
    model_dir = _make_model_dir(tmp_path / "model")
    reported = _make_library(tmp_path / "cache" / "model_lib" / "0123abcd.so")
    _age(reported, 3600)  # a cache hit keeps its old mtime
    _make_library(tmp_path / "cache" / "model_lib" / "ffff0000.so")

    assert find_jit_library(model_dir, tmp_path / "cache", reported=str(reported)) == reported


def test_find_takes_the_newest_library_since_the_open(tmp_path):
    model_dir = _make_model_dir(tmp_path / "model")
    _age(model_dir / "mlc-chat-config.json", 7200)
    cache = tmp_path / "cache"
    older = _make_library(cache / "model_lib" / "aaaa.so")
    _age(older, 3600)
    newest = _make_library(cache / "model_lib" / "bbbb.so")
    _make_library(cache / "model_lib" / "cccc.tar")  # iphone/android output, not ours
    (cache / "model_lib" / "empty.so").write_bytes(b"")

    assert find_jit_library(model_dir, cache) == newest
    assert find_jit_library(model_dir, cache, since=time.time() - 60) == newest
    assert find_jit_library(model_dir, cache, reported="mock://nothing") == newest
    newest.unlink()
    assert find_jit_library(model_dir, cache, since=time.time() - 60) is None
    assert find_jit_library(model_dir, cache) == older


def test_find_ignores_libraries_older_than_the_model(tmp_path):
    cache = tmp_path / "cache"
    stale = _make_library(cache / "model_lib" / "aaaa.so")
    _age(stale, 3600)
    model_dir = _make_model_dir(tmp_path / "model")

    assert find_jit_library(model_dir, cache) is None


def test_find_without_cache_or_model_is_none(tmp_path):
    model_dir = _make_model_dir(tmp_path / "model")
    assert find_jit_library(model_dir, tmp_path / "nothing") is None
    _make_library(tmp_path / "cache" / "model_lib" / "aaaa.so")
    assert find_jit_library(tmp_path / "not-a-model", tmp_path / "cache") is None


def test_find_uses_mlc_cache_resolution(tmp_path, monkeypatch):
    model_dir = _make_model_dir(tmp_path / "model")
    for name in ("MLC_LLM_HOME", "MLC_CACHE_DIR", "MLC_DSO_SUFFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = _make_library(tmp_path / "xdg" / "mlc_llm" / "model_lib" / "aaaa.so")
    assert find_jit_library(model_dir) == default

    monkeypatch.setenv("MLC_LLM_HOME", str(tmp_path / "home"))
    assert find_jit_library(model_dir) is None
    chosen = _make_library(tmp_path / "home" / "model_lib" / "bbbb.so")
    assert find_jit_library(model_dir) == chosen


def test_jit_output_kept_then_chosen(tmp_path):
    """The engine-start sequence: nothing kept -> JIT -> find -> keep -> the next start chooses it."""
    data, model_dir, cache = tmp_path / "data", _make_model_dir(tmp_path / "data" / "models" / MODEL), tmp_path / "mlc"
    assert choose_model_library(data, MODEL, TARGET, model_dir=model_dir) is None
    started = time.time()
    _make_library(cache / "model_lib" / "5f3c.so", b"jit output")  # what MLCEngine(model_lib=None) leaves

    found = find_jit_library(model_dir, cache, since=started)
    kept = keep_model_library(data, MODEL, TARGET, found, "jit", model_dir=model_dir)

    assert choose_model_library(data, MODEL, TARGET, model_dir=model_dir) == str(kept)
    assert json.loads((kept.parent / TARGET_FILE).read_text())["source"] == "jit"
