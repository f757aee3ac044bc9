"""llama.cpp for every CPU: what this CPU and OS grant, the flags each target compiles with, the cached wheel,
the variant a dynamic build loads, and the chat check that setup runs."""

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.engine.llama_cpp.build_llama_wheel import build_llama_wheel
from appliance.engine.llama_cpp.check_llama_cpp import MIN_PROMPT_TOKENS, check_llama_cpp
from appliance.engine.llama_cpp.choose_cpu_variant import choose_cpu_variant
from appliance.engine.llama_cpp.cpu_types import CpuFeatures, LlamaBuildError
from appliance.engine.llama_cpp.llama_build_targets import (
    ARM_VARIANTS,
    FIXED_TARGETS,
    LLAMA_CPP_PYTHON_VERSION,
    X86_FEATURE_FLAGS,
    X86_VARIANTS,
)
from appliance.engine.llama_cpp.plan_llama_build import TARGETS, plan_llama_build
from appliance.engine.llama_cpp.probe_cpu_features import probe_cpu_features

ROOT = Path(__file__).resolve().parents[2]
HASWELL = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi1 bmi2"
# What the machine in the bug report listed: AVX-512 and AMX, of which its hypervisor granted no AMX state.
SAPPHIRE_RAPIDS = (
    HASWELL + " avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16"
    " amx_tile amx_int8 amx_bf16"
)


def _cpuinfo(tmp_path, flags, key="flags", model="Test CPU"):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\n{key}\t\t: {flags}\n\nprocessor\t: 1\n{key}\t: \n")
    return str(path)


def _real_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return set(line.split(":", 1)[1].split())
    return set()


# ---------- what the CPU and the OS grant ----------


def test_features_the_os_refuses_are_neither_granted_nor_built_for(tmp_path):
    asked = []

    def run_probe(state):
        asked.append(state)
        return state != "amx"  # the VM of the bug report: AMX listed, its tile state withheld

    features = probe_cpu_features(_cpuinfo(tmp_path, SAPPHIRE_RAPIDS), machine="x86_64", run_probe=run_probe)
    assert sorted(asked) == ["amx", "avx", "avx512"]
    assert {"AVX512", "AVX512_VNNI", "AVX512_BF16", "AVX2"} <= features.granted
    assert features.refused == {"AMX_TILE", "AMX_INT8", "AMX_BF16"}
    args = plan_llama_build("host", features).cmake_args
    assert "-DGGML_AMX_INT8=OFF" in args and "-DGGML_AMX_TILE=OFF" in args and "-DGGML_AVX512=ON" in args
    assert "-DGGML_NATIVE=OFF" in args and not any(
        "NATIVE=ON" in a or "native" in a.lower().split("=")[-1] for a in args
    )


def test_a_refused_register_state_takes_every_feature_that_needs_it(tmp_path):
    features = probe_cpu_features(
        _cpuinfo(tmp_path, SAPPHIRE_RAPIDS), machine="x86_64", run_probe=lambda state: state == "avx"
    )
    assert features.granted == {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"}
    assert "AVX512" in features.refused and "AMX_INT8" in features.refused


def test_amx_is_useless_without_avx512_vnni(tmp_path):
    features = probe_cpu_features(
        _cpuinfo(tmp_path, HASWELL + " amx_tile amx_int8"), machine="x86_64", run_probe=lambda state: True
    )
    assert not {"AMX_TILE", "AMX_INT8"} & features.granted


def test_arm_features_come_from_the_kernels_hwcaps(tmp_path):
    rk3588 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    features = probe_cpu_features(
        _cpuinfo(tmp_path, rk3588, key="Features"),
        machine="aarch64",
        run_probe=lambda state: pytest.fail("arm64 needs no instruction probes"),
    )
    assert features.granted == {"DOTPROD", "FP16_VECTOR_ARITHMETIC"}
    assert plan_llama_build("host", features).cmake_args[-1] == "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16"


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 register states")
@pytest.mark.parametrize("state, needs", [("avx512", "avx512f"), ("amx", "amx_tile")])
def test_the_instruction_probe_really_faults_where_the_cpu_lacks_the_feature(state, needs):
    if needs in _real_flags():
        pytest.skip(f"this CPU lists {needs}: no refusal to show here")
    result = subprocess.run(
        [sys.executable, "-m", "appliance.engine.llama_cpp.run_instruction_probe", state],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    # AVX-512 faults with SIGILL; AMX is refused by the kernel's arch_prctl first (or faults).
    assert result.returncode == -signal.SIGILL or (state == "amx" and result.returncode == 1)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 register states")
def test_this_machine_grants_what_it_runs():
    features = probe_cpu_features()
    listed = _real_flags()
    assert ("AVX2" in features.granted) == ({"avx", "avx2"} <= listed)
    for feature in features.granted:
        assert all(flag in listed for flag in X86_FEATURE_FLAGS[feature])


# ---------- targets ----------


def test_every_target_builds_without_native_and_without_the_multimodal_library():
    host = CpuFeatures("x86_64", frozenset({"AVX", "AVX2"}))
    for target in TARGETS:
        build = plan_llama_build(target, host)
        assert "-DGGML_NATIVE=OFF" in build.cmake_args and "-DLLAVA_BUILD=OFF" in build.cmake_args
        assert not any("march=native" in arg or "mcpu=native" in arg for arg in build.cmake_args)


def test_board_classes_build_for_their_cores():
    for target in ("rk3588", "jetson-orin"):
        build = plan_llama_build(target)
        assert build.arch == "aarch64" and not build.dynamic
        assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in build.cmake_args
    assert "-DCMAKE_C_FLAGS=-mtune=cortex-a76.cortex-a55" in plan_llama_build("rk3588").cmake_args
    assert "-DCMAKE_C_FLAGS=-mtune=cortex-a78ae" in plan_llama_build("jetson-orin").cmake_args
    for target in ("generic-amd64", "generic-arm64"):
        build = plan_llama_build(target)
        assert build.dynamic and "-DGGML_CPU_ALL_VARIANTS=ON" in build.cmake_args


def test_unknown_targets_and_a_host_without_features_are_refused():
    with pytest.raises(ValueError, match="unknown llama.cpp build target"):
        plan_llama_build("pentium-pro")
    with pytest.raises(ValueError):
        plan_llama_build("host")
    assert set(FIXED_TARGETS) < set(TARGETS)


def test_pyproject_pins_the_release_that_is_compiled():
    assert f'"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"' in (ROOT / "pyproject.toml").read_text()


# ---------- the variant a dynamic build loads ----------


def _libraries(tags):
    return [Path(f"/lib/libggml-cpu-{tag}.so") for tag in tags]


def test_the_variant_chosen_never_needs_what_the_os_refuses():
    everything = frozenset(X86_VARIANTS["sapphirerapids"])
    libraries = _libraries(X86_VARIANTS)
    assert choose_cpu_variant(libraries, CpuFeatures("x86_64", everything)).name == "libggml-cpu-sapphirerapids.so"
    withheld = CpuFeatures("x86_64", everything - {"AMX_TILE", "AMX_INT8"}, refused=frozenset({"AMX_TILE", "AMX_INT8"}))
    assert choose_cpu_variant(libraries, withheld).name == "libggml-cpu-zen4.so"
    haswell = CpuFeatures("x86_64", frozenset(X86_VARIANTS["haswell"]))
    assert choose_cpu_variant(libraries, haswell).name == "libggml-cpu-haswell.so"
    assert choose_cpu_variant(libraries, CpuFeatures("x86_64", frozenset())).name == "libggml-cpu-x64.so"


def test_arm_variants_and_files_that_are_no_known_variant():
    libraries = _libraries(ARM_VARIANTS) + [Path("/lib/libggml-cpu-armv99_9.so"), Path("/lib/libggml-base.so")]
    board = CpuFeatures("aarch64", frozenset({"DOTPROD", "FP16_VECTOR_ARITHMETIC"}))
    assert choose_cpu_variant(libraries, board).name == "libggml-cpu-armv8.2_2.so"
    assert choose_cpu_variant(_libraries(["haswell"]), CpuFeatures("x86_64", frozenset({"AVX"}))) is None
    assert choose_cpu_variant([Path("/lib/libggml-cpu-future.so")], board) is None


# ---------- the cached wheel ----------

FAKE_PYTHON = """#!/bin/sh
# Stands in for `python -m pip download|wheel ...`: records each call and the CMake flags it was given.
echo "$* | CMAKE_ARGS=$CMAKE_ARGS" >> "{log}"
case "$3" in
  download) shift 3; while [ "$1" != "-d" ]; do shift; done; touch "$2/llama_cpp_python-{version}.tar.gz" ;;
  wheel) while [ "$1" != "-w" ]; do shift; done; mkdir -p "$2"; echo "[1/2] compile"; echo "[2/2] link";
         echo fake > "$2/llama_cpp_python-{version}-py3-none-linux_x86_64.whl" ;;
esac
"""


@pytest.fixture
def fake_python(tmp_path):
    log = tmp_path / "calls.log"
    script = tmp_path / "python"
    script.write_text(FAKE_PYTHON.format(log=log, version=LLAMA_CPP_PYTHON_VERSION))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def test_the_wheel_is_cached_under_its_flags_and_pips_cache_is_never_used(tmp_path, fake_python, monkeypatch):
    python, log = fake_python
    cache = tmp_path / "cache"
    build = plan_llama_build("host", CpuFeatures("x86_64", frozenset({"SSE42", "AVX", "AVX2"})))
    monkeypatch.delenv("IPLM_LLAMA_CMAKE_ARGS", raising=False)
    said = []
    first = build_llama_wheel(build, cache_dir=cache, python=python, report=said.append)
    assert first.is_file() and first.parent.parent == cache
    assert any("compiling llama.cpp:" in line and "100%" in line for line in said)
    wheel_call = [line for line in log.read_text().splitlines() if " wheel " in line][0]
    assert "--no-cache-dir" in wheel_call and "-DGGML_AVX2=ON" in wheel_call and "-DGGML_NATIVE=OFF" in wheel_call
    calls = log.read_text()
    # The same flags: the cached wheel, nothing compiled.
    assert build_llama_wheel(build, cache_dir=cache, python=python, report=said.append) == first
    assert log.read_text() == calls
    # Other flags (the owner's own, here): another wheel, compiled with them.
    monkeypatch.setenv("IPLM_LLAMA_CMAKE_ARGS", "-DGGML_AVX2=OFF")
    second = build_llama_wheel(build, cache_dir=cache, python=python, report=said.append)
    assert second != first and second.parent != first.parent
    assert log.read_text().splitlines()[-1].endswith("-DGGML_AVX2=OFF")


def test_a_failed_compile_leaves_no_wheel_behind(tmp_path):
    failing = tmp_path / "python"
    failing.write_text(
        FAKE_PYTHON.format(log=tmp_path / "calls.log", version=LLAMA_CPP_PYTHON_VERSION).replace(
            "wheel) ", "wheel) echo 'error: no compiler'; exit 1; "
        )
    )
    failing.chmod(0o755)
    build = plan_llama_build("generic-amd64")
    with pytest.raises(LlamaBuildError, match="no compiler"):
        build_llama_wheel(build, cache_dir=tmp_path / "cache", python=str(failing), report=lambda line: None)
    assert not list((tmp_path / "cache").glob("*/*.whl"))


# ---------- the check setup runs ----------


@pytest.mark.engine
def test_the_installed_llama_cpp_answers_a_chat_long_enough_to_reach_the_batch_kernels():
    check = check_llama_cpp()
    assert check.ok, check.message
    assert check.prompt_tokens >= MIN_PROMPT_TOKENS and check.completion_tokens > 0


def test_a_build_that_dies_by_sigill_stops_setup_with_the_reason(monkeypatch):
    stand_in = Path(__file__).resolve().parent / "illegal_llama_cpp"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(stand_in), str(ROOT)]))
    check = check_llama_cpp(str(ROOT / "pyproject.toml"))  # never read: the library dies as it loads
    assert not check.ok
    assert "killed by SIGILL (illegal instruction" in check.message
    assert "compiled for instructions this CPU or its OS does not allow" in check.message
    assert "scripts/dev setup" in check.message and "IPLM_LLAMA_TARGET=generic-amd64" in check.message
    cli = subprocess.run(
        [sys.executable, "-m", "appliance.engine.llama_cpp.check_llama_cpp", "--model", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1 and "SIGILL" in cli.stderr


def test_the_test_commands_build_runs_under_qemus_software_cpu_too():
    # The image tests boot the unit under TCG: a host build with AVX-512 or AVX-VNNI would die there.
    from appliance.engine.llama_cpp.build_llama_wheel import _choose_test_target
    from appliance.engine.llama_cpp.cpu_types import CpuFeatures

    haswell = frozenset({"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"})
    assert _choose_test_target(CpuFeatures(arch="x86_64", granted=haswell)) == "host"
    assert _choose_test_target(CpuFeatures(arch="x86_64", granted=haswell | {"AVX512"})) == "qemu-tcg-amd64"
    assert _choose_test_target(CpuFeatures(arch="x86_64", granted=haswell | {"AVX_VNNI"})) == "qemu-tcg-amd64"
    assert _choose_test_target(CpuFeatures(arch="aarch64", granted=frozenset({"DOTPROD"}))) == "host"
