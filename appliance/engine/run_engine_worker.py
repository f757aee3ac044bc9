"""The engine worker process: loads one engine and runs chat requests sent over a pipe.

Native engine code (llama.cpp, TVM) runs here, not in the portal, so that a crash or a hang
costs one request and a restart, not the web app; so does a request that asks for too much memory: the
worker is the kernel's first victim and has a bound of its own (load_within_memory_limit). Protocol: JSON lines.
  parent -> worker: {"op": "chat", "id": N, "request": {...}} | {"op": "cancel", "id": N} | {"op": "shutdown"}
  worker -> parent: {"type": "ready", "kind", "model_id", "n_ctx", "sequences"} | {"type": "failed", "code", "message"}
                    {"id": N, "event": {...ChatEvent}} | {"id": N, "error": {"code", "message", "status"}}
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from typing import BinaryIO, TextIO

from appliance.engine.engine_types import ChatParams, ChatRequest, EngineError
from appliance.engine.load_within_memory_limit import load_within_memory_limit


def _load_factory(path: str):
    module_name, _, function_name = path.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def _decode_request(data: dict) -> ChatRequest:
    params = dict(data.get("params") or {})
    params["stop"] = tuple(params.get("stop") or ())
    return ChatRequest(
        messages=tuple(data["messages"]),
        params=ChatParams(**params),
        client_key=data.get("client_key", ""),
        fit_history=bool(data.get("fit_history", False)),
        reply_prefix=str(data.get("reply_prefix") or ""),
    )


def _describe_out_of_memory(memory_limit: int | None) -> dict:
    if memory_limit is None:
        # No bound of its own: the machine itself is short of memory, which may pass.
        message = "The engine ran out of memory on this request. Please retry later, or send a smaller one."
        return {"code": "engine_out_of_memory", "message": message, "status": 503}
    message = (
        f"This request needed more memory than the engine may use ({memory_limit >> 20} MiB) and was stopped; "
        f"send a smaller one (a shorter prompt, a simpler response_format schema)."
    )
    return {"code": "engine_out_of_memory", "message": message, "status": 400}


def _run_chat(
    engine, job_id: int, request: ChatRequest, cancel: threading.Event, send, jobs: dict, memory_limit: int | None
) -> None:
    try:
        for event in engine.stream_chat(request, cancel):
            send({"id": job_id, "event": vars(event)})  # a flat dataclass: no deep copy per token
    except EngineError as exc:
        send({"id": job_id, "error": {"code": exc.code, "message": exc.message, "status": exc.status}})
    except MemoryError:
        # An allocation this request asked for was refused (the bound, or the machine); what the request held is
        # freed as the error unwinds, so the worker goes on. Ending it would hand the next queued request to a
        # dying process. Native code that fails an allocation aborts instead, and the pool restarts the worker.
        send({"id": job_id, "error": _describe_out_of_memory(memory_limit)})
    except Exception as exc:  # an engine bug must end this request, not the worker
        send({"id": job_id, "error": {"code": "engine_failed", "message": f"engine error: {exc}", "status": 500}})
    finally:
        jobs.pop(job_id, None)


def run_engine_worker(spec: dict, commands: TextIO, events: BinaryIO) -> int:
    """Load the engine `spec` names ({"factory": "module:function", "kwargs": {...}}) and serve requests."""
    write_lock = threading.Lock()

    def send(message: dict) -> None:
        line = (json.dumps(message) + "\n").encode("utf-8")
        with write_lock:
            events.write(line)
            events.flush()

    try:
        engine, memory_limit = load_within_memory_limit(
            str(spec.get("kind", "")), lambda: _load_factory(spec["factory"])(**spec.get("kwargs", {}))
        )
    except EngineError as exc:
        send({"type": "failed", "code": exc.code, "message": exc.message})
        return 1
    except Exception as exc:
        send({"type": "failed", "code": "engine_unavailable", "message": f"cannot load the engine: {exc}"})
        return 1
    send(
        {
            "type": "ready",
            "kind": engine.kind,
            "model_id": engine.model_id,
            "n_ctx": engine.n_ctx,
            "sequences": engine.sequences,
        }
    )

    jobs: dict[int, threading.Event] = {}
    for line in commands:
        message = json.loads(line)
        op = message.get("op")
        if op == "chat":
            cancel = threading.Event()
            jobs[message["id"]] = cancel
            request = _decode_request(message["request"])
            threading.Thread(
                target=_run_chat, args=(engine, message["id"], request, cancel, send, jobs, memory_limit), daemon=True
            ).start()
        elif op == "cancel" and message.get("id") in jobs:
            jobs[message["id"]].set()
        elif op == "shutdown":
            break
    engine.close()
    return 0


if __name__ == "__main__":
    # Keep the protocol on its own descriptor: native libraries print to fd 1, which now goes to stderr.
    _protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.exit(run_engine_worker(json.loads(sys.argv[1]), sys.stdin, _protocol))
