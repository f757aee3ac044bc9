"""Find the CPU features this machine lists and its OS lets a program use."""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Callable

from appliance.engine.llama_cpp.cpu_types import CpuFeatures
from appliance.engine.llama_cpp.llama_build_targets import (
    ARM_FEATURE_FLAGS,
    X86_FEATURE_FLAGS,
    X86_FEATURE_NEEDS,
    X86_FEATURE_STATE,
)

_PROBE_TIMEOUT_S = 20
_READ_LIMIT = 1 << 22


def _read_cpuinfo(path: str) -> tuple[set[str], str]:
    """The first CPU's flags (x86 "flags", arm64 "Features") and its model name."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(_READ_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        return set(), ""
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif name in ("model name", "Model", "CPU part") and not model:
            model = value.strip()
    return flags, model


def _run_probe_in_child(state: str) -> bool:
    """True when `state`'s instruction ran in a child process; a fault (SIGILL) or a refusal is False."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "appliance.engine.llama_cpp.run_instruction_probe", state],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _drop_unusable(features: set[str]) -> set[str]:
    # Drop what is useless without a feature that is missing, until nothing changes (AMX needs AVX512-VNNI).
    while True:
        unusable = {f for f in features if not all(n in features for n in X86_FEATURE_NEEDS.get(f, ()))}
        if not unusable:
            return features
        features = features - unusable


def probe_cpu_features(
    cpuinfo: str = "/proc/cpuinfo",
    *,
    machine: str | None = None,
    run_probe: Callable[[str], bool] = _run_probe_in_child,
) -> CpuFeatures:
    """The features of ggml's build options that this CPU lists and, on x86, that ran when tried.

    `run_probe(state)` tries one register state ("avx", "avx512", "amx") and says whether it ran; it is
    asked only about states the CPU lists a feature of.
    """
    arch = platform.machine() if machine is None else machine
    flags, model = _read_cpuinfo(cpuinfo)
    if arch in ("x86_64", "AMD64"):
        listed = _drop_unusable({f for f, needed in X86_FEATURE_FLAGS.items() if all(n in flags for n in needed)})
        states = sorted({X86_FEATURE_STATE[f] for f in listed if f in X86_FEATURE_STATE})
        working = {state for state in states if run_probe(state)}
        refused = frozenset(f for f in listed if f in X86_FEATURE_STATE and X86_FEATURE_STATE[f] not in working)
        granted = _drop_unusable(listed - refused)
        return CpuFeatures(arch="x86_64", granted=frozenset(granted), refused=refused, model=model)
    if arch in ("aarch64", "arm64"):
        granted = {feature for feature, needed in ARM_FEATURE_FLAGS.items() if all(flag in flags for flag in needed)}
        return CpuFeatures(arch="aarch64", granted=frozenset(granted), model=model)
    return CpuFeatures(arch=arch, granted=frozenset(), model=model)
