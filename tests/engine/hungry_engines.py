"""An engine that asks for more memory than its worker may hold, for the worker's memory bound.

The pool loads it by "module:function" in a real worker process, so what fails is a real allocation in that
process. It refuses to run a memory bomb in a process without a bound (then its test fails, cleanly).
"""

from __future__ import annotations

import ctypes
import json
import resource
import threading
from pathlib import Path

from appliance.engine.engine_types import ChatEvent, Engine

# The 144-byte kind of schema that makes llama.cpp's converter write a grammar of about 18 GB.
SCHEMA_BOMB = {"type": "array", "items": {"type": "string"}, "minItems": 10**9}
_SANE_BOUND = 8 << 30


class _GgmlInitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def _read_bound() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    if soft == resource.RLIM_INFINITY or soft > _SANE_BOUND:
        raise RuntimeError("this worker has no memory bound: no memory bomb runs here without one")
    return soft


def open_hungry_engine(*, model_id: str = "hungry", n_ctx: int = 256) -> Engine:
    """Answers "ok"; the prompt "grammar" runs llama.cpp's own schema converter on SCHEMA_BOMB, "native" has ggml
    allocate twice the worker's bound (ggml aborts when an allocation fails), "hold" waits until cancelled."""
    from llama_cpp import llama_grammar  # loaded with the engine, as the llama.cpp engine loads it

    ggml = ctypes.CDLL(str(Path(llama_grammar.__file__).parent / "lib" / "libggml-base.so"))
    ggml.ggml_init.argtypes = [_GgmlInitParams]
    ggml.ggml_init.restype = ctypes.c_void_p

    def stream_chat(request, cancel):
        prompt = request.messages[-1]["content"]
        yield ChatEvent("start", prompt_tokens=1)
        if prompt == "grammar":
            _read_bound()
            llama_grammar.json_schema_to_gbnf(json.dumps(SCHEMA_BOMB))
        elif prompt == "native":
            ggml.ggml_init(_GgmlInitParams(2 * _read_bound(), None, False))
        elif prompt == "hold":
            while not cancel.is_set():
                threading.Event().wait(0.05)
        yield ChatEvent("delta", text="ok")
        yield ChatEvent("done", completion_tokens=1, finish_reason="stop")

    return Engine(kind="fake", model_id=model_id, n_ctx=n_ctx, stream_chat=stream_chat, close=lambda: None)
