"""Data shapes of the device probe: what the board has, and what the unit recommends for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceProfile:
    """What the probe found. gpu_kind: "cuda" (Jetson, desktop NVIDIA), "opencl" (Mali), or "none"."""

    board: str  # "jetson-orin", "rk3588", "generic-x86_64", "generic-aarch64", ...
    cpu_cores: int
    memory_bytes: int
    gpu_kind: str
    gpu_name: str
    gpu_memory_bytes: int  # shared boards (Jetson, Mali) report system memory here
    mlc_available: bool  # `import mlc_llm` works


@dataclass(frozen=True)
class Recommendation:
    """What the unit runs by default on that device; users override any of it."""

    engine: str  # "llama.cpp" | "mlc"
    device: str  # "cpu", "cuda", "opencl"
    model_id: str
    n_ctx: int
    max_tokens: int
    n_threads: int
    workers: int
    reason: str
    # Chats each worker decodes together (llama.cpp: sequences in one context; MLC batches by itself).
    sequences: int = 1
