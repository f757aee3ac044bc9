"""Turn the probe's recommendation and the user's overrides into the spec an engine worker loads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from appliance.engine.device_profile import Recommendation
from appliance.engine.engine_types import Engine, EngineError
from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine
from appliance.engine.locate_default_model import locate_default_model
from appliance.engine.mlc.open_installed_mlc_engine import open_installed_mlc_engine
from appliance.engine.mlc.open_mlc_engine import open_mlc_engine


def _name_factory(factory: Callable[..., Engine]) -> str:
    # The worker process imports the factory by this name; naming it from the function itself keeps the
    # dependency a real import that tools (and a rename) can follow.
    return f"{factory.__module__}:{factory.__name__}"


def _is_mlc_dir(path: Path) -> bool:
    return path.is_dir() and (path / "mlc-chat-config.json").is_file()


def choose_engine_spec(
    recommendation: Recommendation,
    *,
    model_path: str | None = None,
    model_lib: str | None = None,
    model_id: str | None = None,
    data_dir: str | None = None,
) -> dict:
    """Worker spec {"factory", "kind", "kwargs"}: a GGUF file runs on llama.cpp, an MLC directory on MLC LLM.

    With `data_dir`, MLC models use the unit's kept model libraries (open_installed_mlc_engine).
    """
    path = Path(model_path).expanduser().resolve() if model_path else None
    if path is not None and not path.exists():
        raise EngineError("model_not_found", f"No model at {path}.", status=400)
    if path is not None and _is_mlc_dir(path):
        kwargs = {
            "model_dir": str(path),
            "model_id": model_id or path.name,
            "device": recommendation.device if recommendation.device != "cpu" else "auto",
            "model_lib": model_lib,
            "n_ctx": recommendation.n_ctx,
            "max_tokens": recommendation.max_tokens,
            "sequences": recommendation.sequences,
        }
        if data_dir is None:
            return {"factory": _name_factory(open_mlc_engine), "kind": "mlc", "kwargs": kwargs}
        # A unit's data dir keeps compiled libraries per board and toolchain: use (or make) the matching one.
        return {
            "factory": _name_factory(open_installed_mlc_engine),
            "kind": "mlc",
            "kwargs": {**kwargs, "data_dir": str(data_dir)},
        }
    if path is not None and path.is_dir():
        raise EngineError(
            "model_invalid", f"{path} is a directory without mlc-chat-config.json: not an MLC model.", status=400
        )
    gguf = path or locate_default_model()
    return {
        "factory": _name_factory(open_llama_cpp_engine),
        "kind": "llama.cpp",
        "kwargs": {
            "model_path": str(gguf),
            "model_id": model_id or (recommendation.model_id if path is None else gguf.stem),
            "n_ctx": recommendation.n_ctx,
            "n_threads": recommendation.n_threads,
            "max_tokens": recommendation.max_tokens,
            "sequences": recommendation.sequences,
        },
    }
