"""Which engines can run models on this device."""

from __future__ import annotations

from appliance.engine.device_profile import DeviceProfile

_GPU_KINDS = ("cuda", "opencl")


def list_runnable_engines(profile: DeviceProfile) -> tuple[str, ...]:
    """llama.cpp always (the CPU); MLC LLM as well where there is a GPU it drives and MLC is installed."""
    if profile.gpu_kind in _GPU_KINDS and profile.mlc_available:
        return ("mlc", "llama.cpp")
    return ("llama.cpp",)
