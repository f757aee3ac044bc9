"""Choose the engine, model and defaults a unit runs on the device the probe found."""

from __future__ import annotations

from appliance.engine.default_model import DEFAULT_MODEL_ID
from appliance.engine.device_profile import DeviceProfile, Recommendation

_GIB = 1024**3
LLAMA_SEQUENCES = 4
MLC_SEQUENCES = 4  # MLC's "local" mode: up to 4 requests in one batch
_GPU_KINDS = ("cuda", "opencl")


def _format_gib(size: int) -> str:
    return f"{size / _GIB:.1f} GiB"


def _recommend_mlc(profile: DeviceProfile, model_id: str) -> Recommendation:
    # Desktop cards may not report their memory (no nvidia-smi): fall back to system memory.
    memory = profile.gpu_memory_bytes or profile.memory_bytes
    large = memory >= 8 * _GIB
    gpu = profile.gpu_name or profile.gpu_kind
    return Recommendation(
        engine="mlc",
        device=profile.gpu_kind,
        model_id=model_id,
        n_ctx=4096 if large else 2048,
        max_tokens=1024 if large else 512,
        n_threads=max(1, profile.cpu_cores),
        # One engine holds the GPU; MLC batches requests inside it (AsyncMLCEngine, "local" mode).
        workers=1,
        sequences=MLC_SEQUENCES,
        reason=f"{gpu} GPU with {_format_gib(memory)}: MLC LLM on {profile.gpu_kind} runs {model_id}",
    )


def _explain_cpu_choice(profile: DeviceProfile, cores: str) -> str:
    if profile.gpu_kind not in _GPU_KINDS:
        return f"no GPU found: llama.cpp on {cores}"
    gpu = profile.gpu_name or profile.gpu_kind
    if not profile.mlc_available:
        return f"{gpu} GPU found but MLC LLM is not installed: llama.cpp on {cores}"
    return f"{gpu} GPU found but no MLC model is installed: llama.cpp on {cores}"


def _recommend_llama_cpp(profile: DeviceProfile) -> Recommendation:
    cores = max(1, profile.cpu_cores)
    cores_text = f"{cores} CPU core" + ("" if cores == 1 else "s")
    return Recommendation(
        engine="llama.cpp",
        device="cpu",
        model_id=DEFAULT_MODEL_ID,
        n_ctx=2048 if profile.memory_bytes < 4 * _GIB else 4096,
        max_tokens=512,
        # Past 8 threads llama.cpp is memory-bound: more threads only contend.
        n_threads=min(8, cores),
        # A second engine only pays off when each keeps a few cores of its own.
        workers=1 if cores <= 4 else 2,
        # Several sequences read the weights once per step for all: 1.37x the tokens at 2, 1.47x at 4 on
        # one core, and a second phone's reply starts at once instead of waiting for the first.
        sequences=LLAMA_SEQUENCES,
        reason=_explain_cpu_choice(profile, cores_text),
    )


def recommend_settings(profile: DeviceProfile, mlc_models: tuple[str, ...] = ()) -> Recommendation:
    """Recommend engine, device, model and defaults: MLC on the GPU when it can run, else llama.cpp on the CPU."""
    if profile.gpu_kind in _GPU_KINDS and profile.mlc_available and mlc_models:
        return _recommend_mlc(profile, mlc_models[0])
    return _recommend_llama_cpp(profile)
