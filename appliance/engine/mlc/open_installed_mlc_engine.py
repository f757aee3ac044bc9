"""Open an installed MLC model with a compiled library that matches this unit, or JIT one and keep it."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from appliance.engine.engine_types import Engine, EngineError
from appliance.engine.mlc.choose_model_library import choose_model_library
from appliance.engine.mlc.find_jit_library import find_jit_library
from appliance.engine.mlc.keep_model_library import keep_model_library
from appliance.engine.mlc.library_target import JIT_DIR, LIBS_DIR
from appliance.engine.mlc.open_mlc_engine import open_mlc_engine
from appliance.engine.mlc.probe_library_target import probe_library_target
from appliance.engine.probe_device import probe_device

_log = logging.getLogger("iplm.engine")


def open_installed_mlc_engine(
    model_dir: str,
    *,
    data_dir: str,
    model_id: str,
    device: str,
    model_lib: str | None = None,
    n_ctx: int | None = None,
    max_tokens: int = 512,
    sequences: int = 4,
) -> Engine:
    """open_mlc_engine with the kept library for this board, toolchain and model (or `model_lib` if given).

    Without one, MLC JIT-compiles the library; the result is kept for the next start. Runs in the engine
    worker process, before anything imports mlc_llm.
    """
    # MLC reads its cache location at import: a cache of this model's own makes the JIT result easy to find.
    jit_home = Path(data_dir) / LIBS_DIR / JIT_DIR / model_id
    os.environ["MLC_LLM_HOME"] = str(jit_home)
    target = probe_library_target(probe_device(), device=device)
    library = model_lib or choose_model_library(data_dir, model_id, target, model_dir=model_dir)
    started = time.time()
    try:
        engine = open_mlc_engine(
            model_dir,
            model_id=model_id,
            device=device,
            model_lib=library,
            n_ctx=n_ctx,
            max_tokens=max_tokens,
            sequences=sequences,
        )
    except EngineError as exc:
        if library is None or model_lib:
            raise
        _log.warning("kept library %s did not load (%s); letting MLC compile a new one", library, exc.message)
        library = None
        engine = open_mlc_engine(
            model_dir,
            model_id=model_id,
            device=device,
            model_lib=None,
            n_ctx=n_ctx,
            max_tokens=max_tokens,
            sequences=sequences,
        )
    if library is None:
        compiled = find_jit_library(model_dir, jit_home, since=started)
        if compiled is not None:
            try:
                keep_model_library(data_dir, model_id, target, compiled, "jit", model_dir=model_dir)
            except (EngineError, OSError) as exc:  # keeping is an optimisation: never fail the engine for it
                _log.warning("could not keep the compiled library %s: %s", compiled, exc)
    return engine
