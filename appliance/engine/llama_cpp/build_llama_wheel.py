"""Compile llama-cpp-python into a wheel for a target, kept in a cache keyed on everything that shapes it.

pip's own wheel cache keys a built wheel on the source archive alone, so it hands back a wheel compiled
with other flags (an old `-march=native` build, say). This cache keys on the release, the CMake flags,
the compiler and the architecture; pip is told not to cache at all.

    python -m appliance.engine.llama_cpp.build_llama_wheel [--target host|rk3588|...] [--cache-dir DIR]

prints the wheel's path (progress goes to stderr); `--print-plan` prints the flags and builds nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from appliance.engine.llama_cpp.cpu_types import CpuFeatures, LlamaBuild, LlamaBuildError
from appliance.engine.llama_cpp.llama_build_targets import LLAMA_CPP_PYTHON_VERSION, TCG_X86_FEATURES
from appliance.engine.llama_cpp.plan_llama_build import TARGETS, plan_llama_build
from appliance.engine.llama_cpp.probe_cpu_features import probe_cpu_features

_VARIANTS_CMAKE = Path(__file__).resolve().with_name("install_cpu_variants.cmake")
_EXTRA_ARGS_ENV = "IPLM_LLAMA_CMAKE_ARGS"  # the owner's own flags, appended (and part of the cache key)
_PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\]|^\[\s*(\d+)%\]")
_LOG_TAIL_LINES = 40


def _compiler_identity() -> str:
    names = []
    for variable, default in (("CC", "cc"), ("CXX", "c++")):
        command = os.environ.get(variable, default)
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


def _build_key(build: LlamaBuild, cmake_args: tuple[str, ...]) -> str:
    shape = {
        "release": LLAMA_CPP_PYTHON_VERSION,
        "arch": build.arch,
        "cmake_args": [a for a in cmake_args if not a.startswith("-DCMAKE_PROJECT_llama_cpp_INCLUDE=")],
        "variants_cmake": hashlib.sha256(_VARIANTS_CMAKE.read_bytes()).hexdigest() if build.dynamic else None,
        "compiler": _compiler_identity(),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


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
    sdist: Path, cmake_args: tuple[str, ...], out_dir: Path, python: str, report: Callable[[str], None]
) -> None:
    env = {**os.environ, "CMAKE_ARGS": " ".join(cmake_args)}
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


def build_llama_wheel(
    build: LlamaBuild,
    *,
    cache_dir: Path,
    python: str = sys.executable,
    report: Callable[[str], None] = _report_progress,
) -> Path:
    """The wheel of llama-cpp-python compiled as `build` says: from the cache, or compiled now (minutes)."""
    cmake_args = _cmake_args(build)
    key = _build_key(build, cmake_args)
    wheel_dir = cache_dir / f"{LLAMA_CPP_PYTHON_VERSION}-{build.target}-{key}"
    wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[0]
    report(f"compiling llama.cpp for {build.description} (a few minutes on 2 cores; cached afterwards)")
    report(f"  CMake flags: {' '.join(a for a in cmake_args if not a.startswith('-DCMAKE_PROJECT_'))}")
    sdist = _fetch_sdist(cache_dir, python)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as scratch:
        out_dir = Path(scratch) / "wheel"
        started = time.monotonic()
        _compile(sdist, cmake_args, out_dir, python, report)
        (out_dir / "build.json").write_text(
            json.dumps(
                {
                    "target": build.target,
                    "description": build.description,
                    "dynamic": build.dynamic,
                    "cmake_args": list(cmake_args),
                    "release": LLAMA_CPP_PYTHON_VERSION,
                    "compile_seconds": round(time.monotonic() - started),
                    "cores": os.cpu_count(),
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
