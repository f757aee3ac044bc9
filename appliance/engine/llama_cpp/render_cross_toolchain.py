"""The CMake toolchain file that cross-compiles llama.cpp for another Linux architecture with Debian's cross
compilers (an arm64 image's build on an amd64 machine)."""

from __future__ import annotations

from appliance.engine.llama_cpp.llama_build_targets import CROSS_TOOLCHAINS


def _quote(value: str) -> str:
    if any(char in value for char in '"\\$;\n'):
        raise ValueError(f"{value!r}: not a plain command or path for a CMake toolchain file")
    return f'"{value}"'


def render_cross_toolchain(arch: str, cc: str, cxx: str) -> str:
    """The toolchain file's text for `arch` (`uname -m`: aarch64, x86_64) built with the compilers `cc` and
    `cxx`; ValueError for an architecture without a cross toolchain or a compiler name CMake cannot take."""
    if arch not in CROSS_TOOLCHAINS:
        raise ValueError(f"no cross toolchain for {arch!r}; one of: {', '.join(CROSS_TOOLCHAINS)}")
    triplet = CROSS_TOOLCHAINS[arch][0]
    return (
        f"# Cross-compiling llama.cpp for {arch} Linux (written by build_llama_wheel).\n"
        "set(CMAKE_SYSTEM_NAME Linux)\n"
        f"set(CMAKE_SYSTEM_PROCESSOR {arch})\n"
        f"set(CMAKE_C_COMPILER {_quote(cc)})\n"
        f"set(CMAKE_CXX_COMPILER {_quote(cxx)})\n"
        # The target's libraries and headers (libgomp, libc) are Debian's for the triplet; programs that run
        # during the build (ninja, the compilers' helpers) are this machine's own.
        f"set(CMAKE_FIND_ROOT_PATH {_quote('/usr/' + triplet)})\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)\n"
    )
