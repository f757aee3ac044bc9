"""Decide the CMake flags that compile llama.cpp for a target: this machine, an image, or a board class."""

from __future__ import annotations

from appliance.engine.llama_cpp.cpu_types import CpuFeatures, LlamaBuild
from appliance.engine.llama_cpp.llama_build_targets import (
    ARM_MARCH_EXTENSIONS,
    COMMON_CMAKE_ARGS,
    FIXED_TARGETS,
    X86_FEATURE_FLAGS,
)

TARGETS = ("host", *FIXED_TARGETS)


def _plan_x86_host(features: CpuFeatures) -> tuple[str, ...]:
    # Every option named, ON or OFF: ggml's defaults differ between versions and with GGML_NATIVE.
    return tuple(f"-DGGML_{feature}={'ON' if feature in features.granted else 'OFF'}" for feature in X86_FEATURE_FLAGS)


def _plan_arm_host(features: CpuFeatures) -> tuple[str, ...]:
    extensions = [ext for feature, ext in ARM_MARCH_EXTENSIONS.items() if feature in features.granted]
    base = "armv8.2-a" if extensions else "armv8-a"
    return (f"-DGGML_CPU_ARM_ARCH={'+'.join([base, *extensions])}",)


def _describe_host(features: CpuFeatures) -> str:
    granted = " ".join(sorted(features.granted)) or "baseline only"
    refused = f"; listed but refused by the OS: {' '.join(sorted(features.refused))}" if features.refused else ""
    return f"this machine ({features.model or features.arch}): {granted}{refused}"


def plan_llama_build(target: str, features: CpuFeatures | None = None) -> LlamaBuild:
    """The build for `target` ("host" needs the machine's probed `features`); ValueError for an unknown target."""
    if target in FIXED_TARGETS:
        arch, args, dynamic, description = FIXED_TARGETS[target]
        return LlamaBuild(
            target=target, arch=arch, cmake_args=(*COMMON_CMAKE_ARGS, *args), dynamic=dynamic, description=description
        )
    if target != "host":
        raise ValueError(f"unknown llama.cpp build target {target!r}; one of: {', '.join(TARGETS)}")
    if features is None:
        raise ValueError("a host build needs the machine's CPU features (probe_cpu_features)")
    if features.arch == "x86_64":
        args = _plan_x86_host(features)
    elif features.arch == "aarch64":
        args = _plan_arm_host(features)
    else:
        args = ()  # other architectures: ggml's portable defaults for them, still never native
    return LlamaBuild(
        target="host",
        arch=features.arch,
        cmake_args=(*COMMON_CMAKE_ARGS, *args),
        dynamic=False,
        description=_describe_host(features),
    )
