"""A request that asks for more memory than a worker may hold costs that request (or that worker), never the caller.

Real worker processes (the pool's) run tests/engine/hungry_engines.py: the allocations that fail are real ones,
in the worker, against the bound the worker set itself; the kernel's out-of-memory choice is the worker too.
"""

from __future__ import annotations

import os
import resource
import signal
import threading
from pathlib import Path

import pytest

from appliance.engine.engine_types import ChatParams, ChatRequest, EngineError
from appliance.engine.pool.start_engine_pool import start_engine_pool
from tests.engine.list_live_workers import list_live_workers

HUNGRY = "tests.engine.hungry_engines:open_hungry_engine"


def _ask(engine, prompt: str) -> list:
    request = ChatRequest(messages=({"role": "user", "content": prompt},), params=ChatParams(), client_key="c")
    return list(engine.stream_chat(request, threading.Event()))


def _text(events) -> str:
    return "".join(e.text for e in events if e.kind == "delta")


def _read_data_bound(pid: int) -> tuple[int, int]:
    """The (soft, hard) RLIMIT_DATA of a process, in bytes; -1 for unlimited."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            soft, hard = (-1 if value == "unlimited" else int(value) for value in line.split()[3:5])
            return soft, hard
    raise AssertionError("no data size limit line")


def _read_vm_data(pid: int) -> int:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmData:"))
    return int(line.split()[1]) << 10


def _read_oom_score_adj(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


@pytest.fixture
def start_pool(monkeypatch):
    # ggml prints a backtrace through gdb when it aborts; the test needs the abort, not the backtrace.
    monkeypatch.setenv("GGML_NO_BACKTRACE", "1")
    monkeypatch.delenv("IPLM_WORKER_MEMORY_MIB", raising=False)
    engines = []

    def start(**env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        engine = start_engine_pool({"factory": HUNGRY}, ready_timeout=60)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.close()


def test_a_worker_is_the_kernels_first_choice_and_bounds_its_own_memory(start_pool):
    start_pool()
    [pid] = list_live_workers()
    assert _read_oom_score_adj(pid) == 1000
    assert _read_oom_score_adj(os.getpid()) < 1000  # the caller (the portal) keeps its own
    soft, hard = _read_data_bound(pid)
    # What loading took plus room for one request: well above what the worker holds, far below a bomb.
    assert soft == hard
    assert soft - _read_vm_data(pid) >= (256 << 20) and soft < (4 << 30)
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] != soft  # the bound is the worker's alone


def test_a_schema_bomb_in_the_worker_fails_that_request_and_the_worker_goes_on(start_pool):
    engine = start_pool()
    [pid] = list_live_workers()
    with pytest.raises(EngineError) as refused:
        _ask(engine, "grammar")  # llama.cpp's converter on minItems 10^9: ~18 GB asked for
    assert refused.value.code == "engine_out_of_memory" and refused.value.status == 400
    assert f"({_read_data_bound(pid)[0] >> 20} MiB)" in refused.value.message
    assert _text(_ask(engine, "hello")) == "ok"
    assert list_live_workers() == [pid]  # the same worker answers on: its memory came back as the error unwound


def test_native_code_that_cannot_allocate_ends_the_worker_and_the_pool_restarts_it(start_pool):
    engine = start_pool()
    [pid] = list_live_workers()
    with pytest.raises(EngineError) as failed:
        _ask(engine, "native")  # ggml aborts when its allocation fails, as llama.cpp does
    assert failed.value.code == "engine_failed" and failed.value.status == 502
    assert "SIGABRT" in failed.value.message and "restarting" in failed.value.message
    assert _text(_ask(engine, "hello")) == "ok"  # waits for the restarted worker
    [restarted] = list_live_workers()
    assert restarted != pid
    assert _read_oom_score_adj(restarted) == 1000 and _read_data_bound(restarted)[0] > 0
    assert engine.describe_status()["state"] == "ready"  # an abort is no sign of a broken build


def test_a_worker_the_kernel_kills_fails_its_request_clearly_and_restarts(start_pool):
    engine = start_pool()
    [pid] = list_live_workers()
    request = ChatRequest(messages=({"role": "user", "content": "hold"},), params=ChatParams(), client_key="c")
    stream = engine.stream_chat(request, threading.Event())
    assert next(stream).kind == "start"  # the request is in the worker now
    os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does
    with pytest.raises(EngineError) as failed:
        next(stream)
    assert failed.value.code == "engine_failed" and failed.value.status == 502
    assert "out-of-memory killer" in failed.value.message and "Please retry" in failed.value.message
    assert _text(_ask(engine, "hello")) == "ok"
    assert list_live_workers() != [pid]


def test_a_configured_bound_holds_from_before_the_load(start_pool):
    engine = start_pool(IPLM_WORKER_MEMORY_MIB="900")
    [pid] = list_live_workers()
    assert _read_data_bound(pid) == (900 << 20, 900 << 20)
    with pytest.raises(EngineError) as refused:
        _ask(engine, "grammar")
    assert refused.value.code == "engine_out_of_memory" and "(900 MiB)" in refused.value.message


def test_a_configured_bound_that_is_no_number_is_a_clear_load_failure(start_pool):
    with pytest.raises(EngineError) as failed:
        start_pool(IPLM_WORKER_MEMORY_MIB="lots")
    assert failed.value.code == "engine_unavailable" and "IPLM_WORKER_MEMORY_MIB" in failed.value.message
