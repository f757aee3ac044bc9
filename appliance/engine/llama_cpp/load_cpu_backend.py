"""Load the CPU backend a dynamic llama.cpp build should use here, before llama.cpp picks one itself."""

from __future__ import annotations

import ctypes
from pathlib import Path

from appliance.engine.engine_types import EngineError
from appliance.engine.llama_cpp.choose_cpu_variant import choose_cpu_variant
from appliance.engine.llama_cpp.cpu_types import CpuFeatures
from appliance.engine.llama_cpp.probe_cpu_features import probe_cpu_features


def _locate_libggml(lib_dir: Path) -> Path:
    # A wheel holds copies, not symlinks: libggml.so and libggml.so.0 are two libraries with two backend
    # registries. libllama uses the one its DT_NEEDED names (the soname, libggml.so.0): register there.
    sonames = sorted(lib_dir.glob("libggml.so.*"), key=lambda path: len(path.name))
    return sonames[0] if sonames else lib_dir / "libggml.so"


def load_cpu_backend(features: CpuFeatures | None = None) -> str | None:
    """For a dynamic build: load the variant choose_cpu_variant picks and return its file name.

    None for a build with one compiled-in CPU backend (nothing to choose). Must run before the first
    `Llama(...)`: llama.cpp loads ggml's own pick only when no backend is registered yet.
    """
    import llama_cpp  # loads libllama, and with it libggml

    lib_dir = Path(llama_cpp.__file__).resolve().parent / "lib"
    variants = sorted(lib_dir.glob("libggml-cpu-*.so"))
    if not variants:
        return None
    libggml = ctypes.CDLL(str(_locate_libggml(lib_dir)))
    libggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    if libggml.ggml_backend_reg_count():
        return None  # already chosen in this process
    features = features or probe_cpu_features()
    chosen = choose_cpu_variant(variants, features)
    if chosen is None:
        raise EngineError(
            "engine_unavailable",
            f"none of this llama.cpp build's CPU backends runs on this CPU "
            f"({features.model or features.arch}); rebuild it for this machine",
            status=503,
        )
    libggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    libggml.ggml_backend_load.restype = ctypes.c_void_p
    if not libggml.ggml_backend_load(str(chosen).encode()):
        raise EngineError("engine_unavailable", f"llama.cpp could not load its CPU backend {chosen.name}", status=503)
    return chosen.name
