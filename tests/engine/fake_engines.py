"""Engines for testing the worker pool: deterministic text, and the faults native code can have.

They run inside real worker processes (the pool loads them by "module:function"), so a crash here is a
real process death and a hang is a real stuck process.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import signal
import threading
import time

from appliance.engine.engine_types import ChatEvent, Engine, EngineError


def open_scripted_engine(
    *, words: int = 5, delay: float = 0.01, model_id: str = "fake", n_ctx: int = 256, fail_load: bool = False
) -> Engine:
    """Replies "<prompt> 0 1 2 ...": magic prompts make it crash ("crash"), hang ("hang"), refuse ("refuse")."""
    if fail_load:
        raise EngineError("model_not_found", "fake model file is missing", status=503)

    def stream_chat(request, cancel):
        prompt = request.messages[-1]["content"]
        if prompt == "refuse":
            raise EngineError("context_length_exceeded", "too long", 400)
        if prompt == "boom":
            raise RuntimeError("engine bug")
        yield ChatEvent("start", prompt_tokens=len(prompt.split()))
        count = request.params.max_tokens or words
        for index in range(count):
            if cancel.is_set():
                yield ChatEvent("done", completion_tokens=index, finish_reason="cancelled")
                return
            if prompt == "crash" and index == 2:
                os._exit(77)  # what a segfault in native code looks like to the parent
            if prompt == "hang" and index == 2:
                threading.Event().wait()  # stuck forever, holding no lock we know of
            time.sleep(delay)
            yield ChatEvent("delta", text=f"{prompt}:{index} ")
        yield ChatEvent("done", completion_tokens=count, finish_reason="length")

    return Engine(kind="fake", model_id=model_id, n_ctx=n_ctx, stream_chat=stream_chat, close=lambda: None)


def open_crash_on_load_engine() -> Engine:
    """Dies while loading, like a model file that makes native code abort."""
    os._exit(3)


def _trap_illegal_instruction() -> None:
    # The CPU itself refuses the instruction (x86 `ud2`, arm64 `udf #0`): a real SIGILL, as a build for
    # another CPU gets at its first batch.
    code = bytes.fromhex("0f0b") if platform.machine() in ("x86_64", "AMD64") else bytes.fromhex("00000000")
    memory = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    memory.write(code)
    ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(memory)))()
    os.kill(os.getpid(), signal.SIGILL)  # not reached


def open_illegal_instruction_engine(*, model_id: str = "fake", n_ctx: int = 256) -> Engine:
    """Loads fine, then dies by SIGILL when a chat's prompt is evaluated (a llama.cpp built for another CPU)."""

    def stream_chat(request, cancel):
        _trap_illegal_instruction()
        yield ChatEvent("start")

    return Engine(kind="fake", model_id=model_id, n_ctx=n_ctx, stream_chat=stream_chat, close=lambda: None)
