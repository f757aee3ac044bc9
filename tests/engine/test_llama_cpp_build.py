"""llama.cpp for every CPU: what this CPU and OS grant, the flags each target compiles with, the cached wheel,
the variant a dynamic build loads, cross-compiling for another architecture, and the chat check that setup
runs."""

import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from appliance.engine.llama_cpp.build_llama_wheel import (
    _drop_cpu_variants,
    _plan_dropped_variants,
    build_llama_wheel,
)
from appliance.engine.llama_cpp.check_llama_cpp import MIN_PROMPT_TOKENS, check_llama_cpp
from appliance.engine.llama_cpp.choose_cpu_variant import choose_cpu_variant
from appliance.engine.llama_cpp.cpu_types import CpuFeatures, LlamaBuildError
from appliance.engine.llama_cpp.llama_build_targets import (
    ARM_MARCH_EXTENSIONS,
    ARM_VARIANT_MARCH,
    ARM_VARIANTS,
    FIXED_TARGETS,
    LLAMA_CPP_PYTHON_VERSION,
    X86_FEATURE_FLAGS,
    X86_VARIANTS,
)
from appliance.engine.llama_cpp.plan_llama_build import TARGETS, plan_llama_build
from appliance.engine.llama_cpp.probe_cpu_features import probe_cpu_features
from appliance.engine.llama_cpp.render_cross_toolchain import render_cross_toolchain
from appliance.engine.llama_cpp.retag_wheel import retag_wheel

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


def test_an_sme_cpu_takes_the_best_variant_a_build_without_sme_has():
    # GCC 12 (Debian 12's cross compiler) cannot compile the SME variants: a generic-arm64 build lacks them.
    without_sme = [tag for tag, needs in ARM_VARIANTS.items() if "SME" not in needs]
    sme_cpu = CpuFeatures("aarch64", frozenset(ARM_VARIANTS["armv9.2_2"]))
    assert choose_cpu_variant(_libraries(without_sme), sme_cpu).name == "libggml-cpu-armv8.6_2.so"
    assert choose_cpu_variant(_libraries(ARM_VARIANTS), sme_cpu).name == "libggml-cpu-armv9.2_2.so"


def test_each_arm_variants_march_enables_exactly_its_features():
    extension = {**ARM_MARCH_EXTENSIONS, "SME": "sme"}
    assert set(ARM_VARIANT_MARCH) == set(ARM_VARIANTS)
    for tag, march in ARM_VARIANT_MARCH.items():
        base, *extensions = march.split("+")
        assert sorted(extensions) == sorted(extension[feature] for feature in ARM_VARIANTS[tag]), tag
        assert base == f"armv{tag.split('_')[0].removeprefix('armv').replace('8.0', '8')}-a", tag


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
    first = build_llama_wheel(build, cache_dir=cache, python=python, report=said.append, machine="x86_64")
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
        build_llama_wheel(
            build, cache_dir=tmp_path / "cache", python=str(failing), report=lambda line: None, machine="x86_64"
        )
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


# ---------- cross-compiling for another architecture ----------


def test_the_cross_toolchain_names_the_target_and_debians_cross_compilers():
    text = render_cross_toolchain("aarch64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++")
    lines = text.splitlines()
    for line in (
        "set(CMAKE_SYSTEM_NAME Linux)",
        "set(CMAKE_SYSTEM_PROCESSOR aarch64)",
        'set(CMAKE_C_COMPILER "aarch64-linux-gnu-gcc")',
        'set(CMAKE_CXX_COMPILER "aarch64-linux-gnu-g++")',
        'set(CMAKE_FIND_ROOT_PATH "/usr/aarch64-linux-gnu")',
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
    ):
        assert line in lines
    assert "native" not in text
    with pytest.raises(ValueError, match="no cross toolchain"):
        render_cross_toolchain("riscv64", "gcc", "g++")
    with pytest.raises(ValueError, match="not a plain command"):
        render_cross_toolchain("aarch64", 'gcc") # injected', "g++")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _make_wheel(folder: Path, platform: str, library: bytes = b"\x7fELF") -> Path:
    """A small llama-cpp-python wheel, as a build backend writes it: WHEEL, RECORD, one shared library."""
    wheel = folder / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}-py3-none-{platform}.whl"
    dist_info = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.dist-info"
    files = {
        "llama_cpp/__init__.py": b"__version__ = '0'\n",
        "llama_cpp/lib/libllama.so": library,
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-{platform}\n".encode(),
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist_info}/RECORD", record + f"{dist_info}/RECORD,,\n")
    return wheel


def test_a_wheel_tagged_for_the_build_machine_is_retagged_for_its_target(tmp_path):
    wheel = _make_wheel(tmp_path, "linux_x86_64")
    retagged = retag_wheel(wheel, "linux_aarch64")
    assert retagged.name == f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}-py3-none-linux_aarch64.whl"
    assert not wheel.exists()
    dist_info = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.dist-info"
    with zipfile.ZipFile(retagged) as archive:
        metadata = archive.read(f"{dist_info}/WHEEL")
        assert "Tag: py3-none-linux_aarch64" in metadata.decode().splitlines()
        assert "x86_64" not in metadata.decode()
        record = {
            line.split(",")[0]: line.split(",", 1)[1]
            for line in archive.read(f"{dist_info}/RECORD").decode().splitlines()
        }
        # Every file still matches its RECORD line (pip checks them when it installs).
        for name in archive.namelist():
            if name != f"{dist_info}/RECORD":
                data = archive.read(name)
                assert record[name] == f"{_record_hash(data)},{len(data)}", name
    assert retag_wheel(retagged, "linux_aarch64") == retagged  # already so: unchanged
    with pytest.raises(ValueError, match="not a wheel"):
        retag_wheel(tmp_path / "llama.tar.gz", "linux_aarch64")
    with pytest.raises(ValueError, match="platform tag"):
        retag_wheel(retagged, "linux-aarch64")
    broken = tmp_path / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}-py3-none-linux_x86_64.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a zip"):
        retag_wheel(broken, "linux_aarch64")
    assert broken.exists() and not list(tmp_path.glob(".*.part"))


def test_variants_the_compiler_cannot_compile_are_left_out_and_only_those(tmp_path):
    listing = (
        '        if (CMAKE_SYSTEM_NAME MATCHES "Linux")\n'
        "    ggml_add_cpu_backend_variant(armv8.6_2    DOTPROD FP16_VECTOR_ARITHMETIC SVE MATMUL_INT8 SVE2)\n"
        "    ggml_add_cpu_backend_variant(armv9.2_1    DOTPROD FP16_VECTOR_ARITHMETIC SVE MATMUL_INT8 SME)\n"
        "    ggml_add_cpu_backend_variant(armv9.2_2    DOTPROD FP16_VECTOR_ARITHMETIC SVE MATMUL_INT8 SVE2 SME)\n"
        '        elseif (CMAKE_SYSTEM_NAME MATCHES "Android")\n'
        "    ggml_add_cpu_backend_variant(android_armv9.2_1    DOTPROD MATMUL_INT8 FP16_VECTOR_ARITHMETIC SVE SME)\n"
    )
    kept = _drop_cpu_variants(listing, ("armv9.2_1", "armv9.2_2"))
    assert "(armv9.2_1" not in kept and "(armv9.2_2" not in kept
    assert "(armv8.6_2" in kept and "(android_armv9.2_1" in kept and kept.count("\n") == 4
    assert _drop_cpu_variants(listing, ()) == listing
    with pytest.raises(LlamaBuildError, match="armv9.3_1"):
        _drop_cpu_variants(listing, ("armv9.3_1",))  # a release that renamed its variants stops the build
    # A compiler that knows no SME (GCC 12): exactly the SME variants are left out of a generic-arm64 build.
    gcc12 = tmp_path / "gcc"
    gcc12.write_text('#!/bin/sh\ncase "$*" in *+sme*) echo "unknown value for -march" >&2; exit 1 ;; esac\nexit 0\n')
    gcc12.chmod(0o755)
    assert _plan_dropped_variants(plan_llama_build("generic-arm64"), str(gcc12)) == ("armv9.2_1", "armv9.2_2")
    assert _plan_dropped_variants(plan_llama_build("rk3588"), str(gcc12)) == ()
    assert _plan_dropped_variants(plan_llama_build("generic-amd64"), str(gcc12)) == ()


FAKE_CROSS_PYTHON = """#!{python}
# Stands in for `python -m pip wheel ...` of a cross build: records the CMake flags, the platform it was told,
# and writes the wheel a backend that ignores _PYTHON_HOST_PLATFORM writes (tagged for this machine).
import json, os, sys, zipfile
args = sys.argv[1:]
out = args[args.index("-w") + 1]
os.makedirs(out, exist_ok=True)
with open({log!r}, "a") as log:
    log.write(json.dumps({{"args": args, "CMAKE_ARGS": os.environ["CMAKE_ARGS"],
                           "host": os.environ.get("_PYTHON_HOST_PLATFORM")}}) + "\\n")
print("[1/1] link")
dist_info = "llama_cpp_python-{version}.dist-info"
with zipfile.ZipFile(os.path.join(out, "llama_cpp_python-{version}-py3-none-linux_x86_64.whl"), "w") as wheel:
    wheel.writestr("llama_cpp/lib/libllama.so", {library!r})
    wheel.writestr(dist_info + "/WHEEL", "Wheel-Version: 1.0\\nTag: py3-none-linux_x86_64\\n")
    wheel.writestr(dist_info + "/RECORD", dist_info + "/WHEEL,sha256=x,1\\n" + dist_info + "/RECORD,,\\n")
"""


def _fake_cross_tools(tmp_path, monkeypatch, library: bytes):
    """A PATH with stand-ins for the cross compilers, cmake and ninja, and a stand-in for pip's Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++", "cmake", "ninja"):
        (bin_dir / name).write_text(f"#!/bin/sh\necho '{name} (Test) 12.2.0'\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("IPLM_LLAMA_CMAKE_ARGS", raising=False)
    log = tmp_path / "calls.log"
    python = tmp_path / "python"
    python.write_text(
        FAKE_CROSS_PYTHON.format(python=sys.executable, log=str(log), library=library, version=LLAMA_CPP_PYTHON_VERSION)
    )
    python.chmod(0o755)
    (tmp_path / "cache" / "sdist").mkdir(parents=True)
    (tmp_path / "cache" / "sdist" / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz").write_bytes(b"")
    return str(python), log


AARCH64_ELF = b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little") + bytes(44)


def test_a_board_of_another_architecture_is_cross_compiled_and_its_wheel_tagged_for_it(tmp_path, monkeypatch):
    python, log = _fake_cross_tools(tmp_path, monkeypatch, AARCH64_ELF)
    build = plan_llama_build("rk3588")
    said: list[str] = []
    wheel = build_llama_wheel(build, cache_dir=tmp_path / "cache", python=python, report=said.append, machine="x86_64")
    assert wheel.name == f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}-py3-none-linux_aarch64.whl"
    assert any("cross-compiling for aarch64" in line and "aarch64-linux-gnu-gcc" in line for line in said)
    call = json.loads(log.read_text().splitlines()[0])
    assert call["host"] == "linux-aarch64"
    toolchain = next(arg for arg in call["CMAKE_ARGS"].split() if arg.startswith("-DCMAKE_TOOLCHAIN_FILE="))
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in call["CMAKE_ARGS"].split()
    assert not Path(toolchain.split("=", 1)[1]).exists()  # written in the build's scratch folder, gone with it
    recorded = json.loads((wheel.parent / "build.json").read_text())
    assert recorded["cross_compilers"] == ["aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++"]
    # The cache key holds the cross compilers' identity: another compiler, another wheel.
    assert build_llama_wheel(build, cache_dir=tmp_path / "cache", python=python, machine="x86_64") == wheel
    (tmp_path / "bin" / "aarch64-linux-gnu-gcc").write_text("#!/bin/sh\necho 'aarch64-linux-gnu-gcc 13.1'\n")
    other = build_llama_wheel(build, cache_dir=tmp_path / "cache", python=python, machine="x86_64", report=said.append)
    assert other.parent != wheel.parent and len(log.read_text().splitlines()) == 2


def test_a_cross_build_holding_a_library_for_the_wrong_machine_is_refused(tmp_path, monkeypatch):
    x86_elf = AARCH64_ELF[:18] + (62).to_bytes(2, "little") + AARCH64_ELF[20:]
    python, _ = _fake_cross_tools(tmp_path, monkeypatch, x86_elf)
    with pytest.raises(LlamaBuildError, match="libllama.so .* is not an aarch64 library"):
        build_llama_wheel(
            plan_llama_build("jetson-orin"), cache_dir=tmp_path / "cache", python=python, machine="x86_64",
            report=lambda line: None,
        )  # fmt: skip
    assert not list((tmp_path / "cache").glob("*/*.whl"))


def test_a_cross_build_without_the_cross_compilers_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LlamaBuildError, match="apt install gcc-aarch64-linux-gnu g\\+\\+-aarch64-linux-gnu"):
        build_llama_wheel(plan_llama_build("generic-arm64"), cache_dir=tmp_path, machine="x86_64")
