"""Compile llama-cpp-python into a wheel for a target, kept in a cache keyed on everything that shapes it.

pip's own wheel cache keys a built wheel on the source archive alone, so it hands back a wheel compiled
with other flags (an old `-march=native` build, say). This cache keys on the release, the CMake flags,
the compiler and the architecture; pip is told not to cache at all.

    python -m appliance.engine.llama_cpp.build_llama_wheel [--target host|rk3588|...] [--cache-dir DIR]

prints the wheel's path (progress goes to stderr); `--print-plan` prints the flags and builds nothing.

A target for another architecture (generic-arm64, rk3588, jetson-orin on an amd64 machine) is cross-compiled
with Debian's cross compilers (a CMake toolchain file) and its wheel tagged for the target (linux_aarch64).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from appliance.engine.llama_cpp.cpu_types import CpuFeatures, LlamaBuild, LlamaBuildError
from appliance.engine.llama_cpp.llama_build_targets import (
    ARM_VARIANT_MARCH,
    CROSS_TOOLCHAINS,
    LLAMA_CPP_PYTHON_VERSION,
    TCG_X86_FEATURES,
)
from appliance.engine.llama_cpp.plan_llama_build import TARGETS, plan_llama_build
from appliance.engine.llama_cpp.probe_cpu_features import probe_cpu_features
from appliance.engine.llama_cpp.render_cross_toolchain import render_cross_toolchain
from appliance.engine.llama_cpp.retag_wheel import retag_wheel

_VARIANTS_CMAKE = Path(__file__).resolve().with_name("install_cpu_variants.cmake")
_EXTRA_ARGS_ENV = "IPLM_LLAMA_CMAKE_ARGS"  # the owner's own flags, appended (and part of the cache key)
_PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\]|^\[\s*(\d+)%\]")
_LOG_TAIL_LINES = 40
# ELF e_machine of each architecture's shared libraries: a cross build's wheel must hold only the target's.
_ELF_MACHINE = {"x86_64": 62, "aarch64": 183}
_VARIANTS_LIST = "vendor/llama.cpp/ggml/src/CMakeLists.txt"  # where ggml lists its CPU variants


def _choose_compilers(build: LlamaBuild, machine: str) -> tuple[str, str]:
    """C and C++ compiler commands: CC/CXX (or cc/c++) here, Debian's cross compilers for another arch."""
    if build.arch == machine or build.target == "host":
        return os.environ.get("CC", "cc"), os.environ.get("CXX", "c++")
    if build.arch not in CROSS_TOOLCHAINS:
        raise LlamaBuildError(f"{build.target} is for {build.arch}: no cross toolchain for it on this {machine}")
    triplet, packages = CROSS_TOOLCHAINS[build.arch]
    cc, cxx = f"{triplet}-gcc", f"{triplet}-g++"
    # This machine's own CMake and Ninja: the build backend would fetch pip's, tagged for the target, not here.
    missing = [command for command in (cc, cxx, "cmake", "ninja") if shutil.which(command) is None]
    if missing:
        raise LlamaBuildError(
            f"{build.target} is for {build.arch}, cross-compiled here with {', '.join(missing)}: not installed "
            f"(Debian: apt install {packages} cmake ninja-build)"
        )
    return cc, cxx


def _compiler_identity(compilers: tuple[str, str]) -> str:
    names = []
    for command in compilers:
        try:
            result = subprocess.run(
                [*shlex.split(command), "--version"], capture_output=True, text=True, timeout=30, check=False
            )
            names.append(result.stdout.splitlines()[0] if result.stdout else command)
        except (OSError, subprocess.SubprocessError):
            names.append(f"{command} (not found)")
    return " / ".join(names)


def _cmake_args(build: LlamaBuild) -> tuple[str, ...]:
    extra = tuple(shlex.split(os.environ.get(_EXTRA_ARGS_ENV, "")))
    variants = (f"-DCMAKE_PROJECT_llama_cpp_INCLUDE={_VARIANTS_CMAKE}",) if build.dynamic else ()
    return (*build.cmake_args, *variants, *extra)


def _build_key(
    build: LlamaBuild, cmake_args: tuple[str, ...], compilers: tuple[str, str], cross: bool, dropped: tuple[str, ...]
) -> str:
    shape: dict[str, object] = {
        "release": LLAMA_CPP_PYTHON_VERSION,
        "arch": build.arch,
        "cmake_args": [a for a in cmake_args if not a.startswith("-DCMAKE_PROJECT_llama_cpp_INCLUDE=")],
        "variants_cmake": hashlib.sha256(_VARIANTS_CMAKE.read_bytes()).hexdigest() if build.dynamic else None,
        "compiler": _compiler_identity(compilers),
    }
    # Only where they apply, so that a native build keeps the key (and the cached wheel) it had before.
    if cross:
        shape["cross"] = {
            "cc": compilers[0],
            "cxx": compilers[1],
            "toolchain": render_cross_toolchain(build.arch, *compilers),
        }
    if dropped:
        shape["dropped_variants"] = list(dropped)
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def _accepts_march(cc: str, march: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="iplm-march-") as scratch:
        source = Path(scratch) / "probe.c"
        source.write_text("int main(void) { return 0; }\n")
        try:
            result = subprocess.run(
                [*shlex.split(cc), f"-march={march}", "-c", str(source), "-o", str(source.with_suffix(".o"))],
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0


def _plan_dropped_variants(build: LlamaBuild, cc: str) -> tuple[str, ...]:
    """The ARM variants of a dynamic build that `cc` cannot compile (GCC 12: the SME ones, armv9.2-a+sme).
    Left out of the build rather than failing it: the unit's chooser picks among the variants a build has."""
    if not build.dynamic or build.arch != "aarch64":
        return ()
    return tuple(tag for tag, march in ARM_VARIANT_MARCH.items() if not _accepts_march(cc, march))


def _drop_cpu_variants(cmakelists: str, tags: Iterable[str]) -> str:
    """ggml's CMakeLists.txt without the `ggml_add_cpu_backend_variant(<tag> ...)` line of each of `tags`;
    LlamaBuildError where a tag has no such line (a release that renamed its variants must not pass silently)."""
    lines = cmakelists.splitlines(keepends=True)
    for tag in tags:
        pattern = re.compile(rf"^\s*ggml_add_cpu_backend_variant\({re.escape(tag)}(\s|\))")
        kept = [line for line in lines if not pattern.match(line)]
        if len(kept) != len(lines) - 1:
            raise LlamaBuildError(f"ggml's CPU variant {tag!r} is not listed once in {_VARIANTS_LIST}")
        lines = kept
    return "".join(lines)


def _unpack_source(sdist: Path, scratch: Path, dropped: tuple[str, ...]) -> Path:
    """The sdist unpacked under `scratch`, its variant list without `dropped`; returns the source tree."""
    with tarfile.open(sdist) as archive:
        archive.extractall(scratch, filter="data")
    source = scratch / sdist.name.removesuffix(".tar.gz")
    listing = source / _VARIANTS_LIST
    listing.write_text(_drop_cpu_variants(listing.read_text(encoding="utf-8"), dropped), encoding="utf-8")
    return source


def _fetch_sdist(cache_dir: Path, python: str) -> Path:
    sdist_dir = cache_dir / "sdist"
    found = sorted(sdist_dir.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"))
    if found:
        return found[0]
    sdist_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            "llama-cpp-python",
            f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
            "-d",
            str(sdist_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = sorted(sdist_dir.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"))
    if result.returncode != 0 or not found:
        raise LlamaBuildError(
            f"cannot download llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}'s source: "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return found[0]


def _report_progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _compile(
    sdist: Path,
    cmake_args: tuple[str, ...],
    out_dir: Path,
    python: str,
    report: Callable[[str], None],
    extra_env: dict[str, str],
) -> None:
    env = {**os.environ, **extra_env, "CMAKE_ARGS": " ".join(cmake_args)}
    command = [python, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-cache-dir", str(sdist), "-w", str(out_dir)]
    started, shown = time.monotonic(), -1
    tail: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    ) as process:
        for line in process.stdout or ():
            tail = (tail + [line.rstrip()])[-_LOG_TAIL_LINES:]
            match = _PROGRESS.match(line.strip())
            if not match:
                continue
            percent = (100 * int(match[1]) // int(match[2])) if match[1] else int(match[3])
            if percent // 10 > shown:
                shown = percent // 10
                report(f"  compiling llama.cpp: {percent:3d}% ({time.monotonic() - started:.0f} s)")
    if process.returncode != 0:
        raise LlamaBuildError("compiling llama-cpp-python failed; the last lines:\n" + "\n".join(tail))


def _check_cross_wheel(wheel: Path, arch: str) -> Path:
    """The cross-compiled `wheel`, tagged linux_<arch> (retagged where the build backend tagged it for this
    machine) after checking that each shared library in it is an ELF file for `arch`."""
    with zipfile.ZipFile(wheel) as archive:
        libraries = [name for name in archive.namelist() if re.search(r"\.so(\.\d+)*$", name)]
        if not libraries:
            raise LlamaBuildError(f"{wheel.name} holds no shared library: the compile built nothing")
        for name in libraries:
            header = archive.read(name)[:20]
            machine = int.from_bytes(header[18:20], "little") if header[:4] == b"\x7fELF" else None
            if machine != _ELF_MACHINE[arch]:
                raise LlamaBuildError(f"{name} in {wheel.name} is not an {arch} library (ELF machine {machine})")
    return retag_wheel(wheel, f"linux_{arch}")


def build_llama_wheel(
    build: LlamaBuild,
    *,
    cache_dir: Path,
    python: str = sys.executable,
    report: Callable[[str], None] = _report_progress,
    machine: str = platform.machine(),
) -> Path:
    """The wheel of llama-cpp-python compiled as `build` says: from the cache, or compiled now (minutes);
    cross-compiled when `build` is for another architecture than this `machine`'s."""
    cross = build.arch != machine and build.target != "host"
    compilers = _choose_compilers(build, machine)
    dropped = _plan_dropped_variants(build, compilers[0])
    cmake_args = _cmake_args(build)
    key = _build_key(build, cmake_args, compilers, cross, dropped)
    wheel_dir = cache_dir / f"{LLAMA_CPP_PYTHON_VERSION}-{build.target}-{key}"
    wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[0]
    report(f"compiling llama.cpp for {build.description} (a few minutes on 2 cores; cached afterwards)")
    if cross:
        report(f"  cross-compiling for {build.arch} on this {machine} with {' and '.join(compilers)}")
    if dropped:
        report(f"  leaving out the CPU variants {compilers[0]} cannot compile: {' '.join(dropped)}")
    report(f"  CMake flags: {' '.join(a for a in cmake_args if not a.startswith('-DCMAKE_PROJECT_'))}")
    sdist = _fetch_sdist(cache_dir, python)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as scratch:
        out_dir = Path(scratch) / "wheel"
        source = _unpack_source(sdist, Path(scratch) / "source", dropped) if dropped else sdist
        extra_env: dict[str, str] = {}
        if cross:
            toolchain = Path(scratch) / "toolchain.cmake"
            toolchain.write_text(render_cross_toolchain(build.arch, *compilers), encoding="utf-8")
            cmake_args = (f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", *cmake_args)
            # scikit-build-core (>= 0.11) tags the wheel for this platform; _check_cross_wheel retags otherwise.
            extra_env["_PYTHON_HOST_PLATFORM"] = f"linux-{build.arch}"
        started = time.monotonic()
        _compile(source, cmake_args, out_dir, python, report, extra_env)
        if cross:
            _check_cross_wheel(sorted(out_dir.glob("llama_cpp_python-*.whl"))[0], build.arch)
        (out_dir / "build.json").write_text(
            json.dumps(
                {
                    "target": build.target,
                    "description": build.description,
                    "dynamic": build.dynamic,
                    "cmake_args": [a for a in cmake_args if not a.startswith("-DCMAKE_TOOLCHAIN_FILE=")],
                    "release": LLAMA_CPP_PYTHON_VERSION,
                    "compile_seconds": round(time.monotonic() - started),
                    "cores": os.cpu_count(),
                    **({"cross_compilers": list(compilers)} if cross else {}),
                    **({"dropped_variants": list(dropped)} if dropped else {}),
                },
                indent=1,
            )
            + "\n"
        )
        shutil.rmtree(wheel_dir, ignore_errors=True)
        os.replace(out_dir, wheel_dir)  # whole or not at all: an interrupted compile leaves no wheel behind
    return sorted(wheel_dir.glob("llama_cpp_python-*.whl"))[0]


def _choose_test_target(features: CpuFeatures) -> str:
    """The build the test command installs: this machine's, unless it uses features QEMU's software CPU lacks
    (AVX-512, AVX-VNNI): then the image tests, which boot the unit under TCG, could not run it, and one build
    that runs in both saves compiling a second."""
    if features.arch == "x86_64" and not features.granted <= set(TCG_X86_FEATURES):
        return "qemu-tcg-amd64"
    return "host"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iplm" / "llama-cpp"


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="build_llama_wheel", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", default="host", choices=(*TARGETS, "tests"), help="'tests': the build the test command installs"
    )
    parser.add_argument("--cache-dir", type=Path, default=_default_cache_dir())
    parser.add_argument("--print-plan", action="store_true", help="print the CMake flags; build nothing")
    args = parser.parse_args(argv)
    target = args.target
    if target == "tests":
        target = _choose_test_target(probe_cpu_features())
    build = plan_llama_build(target, probe_cpu_features() if target == "host" else None)
    if args.print_plan:
        print(" ".join(_cmake_args(build)))
        return 0
    try:
        print(build_llama_wheel(build, cache_dir=args.cache_dir))
    except LlamaBuildError as exc:
        print(f"build_llama_wheel: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
