"""Data shapes of CPU features and llama.cpp builds.

Feature names are ggml's own build options (GGML_AVX2, GGML_AVX512_VNNI, ...) without the prefix, so a
feature set maps one to one onto the CMake flags of a build and onto the CPU variants ggml ships.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CpuFeatures:
    """What this CPU offers and the OS lets a program use.

    granted: ggml features the CPU lists and, where they need register state the OS must enable
    (AVX, AVX-512, AMX), that ran without a fault. refused: features the CPU lists but that faulted
    when tried (a hypervisor or kernel that withholds the state): never build for or load these.
    """

    arch: str  # "x86_64" | "aarch64" | another `uname -m`
    granted: frozenset[str]
    refused: frozenset[str] = frozenset()
    model: str = ""  # the CPU's model name, for messages


@dataclass(frozen=True)
class LlamaBuild:
    """How to compile llama.cpp for a target.

    dynamic: GGML_BACKEND_DL with every CPU variant of the architecture, the unit chooses one at load
    time (choose_cpu_variant); otherwise one CPU backend compiled for `cmake_args`' feature list.
    """

    target: str  # "host" | a board class or generic image target (llama_build_targets)
    arch: str
    cmake_args: tuple[str, ...]
    dynamic: bool
    description: str


@dataclass(frozen=True)
class LlamaCheck:
    """The outcome of check_llama_cpp: did the installed llama.cpp answer a chat here, and if not why."""

    ok: bool
    message: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LlamaBuildError(Exception):
    """Compiling llama.cpp failed; the message says why (with the tail of the compiler's output)."""
