"""Choose which of a dynamic build's CPU backends (libggml-cpu-<variant>.so) this machine loads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from appliance.engine.llama_cpp.cpu_types import CpuFeatures
from appliance.engine.llama_cpp.llama_build_targets import (
    ARM_FEATURE_WEIGHT,
    ARM_VARIANTS,
    X86_FEATURE_WEIGHT,
    X86_VARIANTS,
)

_PREFIX, _SUFFIX = "libggml-cpu-", ".so"


def _variant_tag(path: Path) -> str | None:
    name = path.name
    if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
        return name[len(_PREFIX) : -len(_SUFFIX)]
    return None


def choose_cpu_variant(libraries: Iterable[Path], features: CpuFeatures) -> Path | None:
    """The best variant whose every feature this CPU has and the OS grants; None when none qualifies.

    ggml's own choice (ggml_backend_load_all) reads CPUID and ignores what the OS refuses: on a machine
    that lists AMX but withholds its state it loads the AMX variant, which dies with SIGILL.
    """
    variants, weights = (
        (X86_VARIANTS, X86_FEATURE_WEIGHT) if features.arch == "x86_64" else (ARM_VARIANTS, ARM_FEATURE_WEIGHT)
    )
    best: tuple[int, str, Path] | None = None
    for path in libraries:
        tag = _variant_tag(path)
        if tag not in variants:
            continue  # a variant we do not know the needs of is never a safe guess
        needs = variants[tag]
        if not all(feature in features.granted for feature in needs):
            continue
        score = 1 + sum(weights.get(feature, 0) for feature in needs)
        if best is None or (score, tag) > best[:2]:
            best = (score, tag, path)
    return best[2] if best else None
