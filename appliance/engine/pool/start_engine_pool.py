"""A supervised pool of engine worker processes behind the one Engine interface.

Requests queue fairly (round robin between clients, so one phone cannot starve the others) and run on
the first free worker. A worker that crashes or stops producing tokens for `hang_timeout` seconds is
killed and restarted; only the request it was running gets an error. A build that cannot run on this
CPU (workers dying by SIGILL, or crashing before their first token, several times in a row) stops the
restarts and is reported as such. The decisions are apply_pool_event's; this module only performs them.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance.engine.engine_types import CancelSignal, ChatEvent, ChatRequest, ChatStream, Engine, EngineError
from appliance.engine.pool.apply_pool_event import apply_pool_event
from appliance.engine.pool.estimate_start_delay import estimate_start_delay
from appliance.engine.pool.pool_types import (
    ChatCancelled,
    ChatSubmitted,
    ClockTicked,
    DeliverEvent,
    EngineSpeed,
    FinishJob,
    KillWorker,
    PoolClosing,
    PoolEffect,
    PoolEvent,
    PoolLimits,
    PoolStarted,
    PoolState,
    RestartDue,
    ScheduleRestart,
    SendToWorker,
    SpawnWorker,
    WorkerExited,
    WorkerLoadFailed,
    WorkerReady,
    WorkerRefused,
    WorkerSlot,
    WorkerStreamed,
)

_POLL_SECONDS = 0.1
_SHUTDOWN_GRACE_S = 5.0


@dataclass(eq=False)
class _Edge:
    """What the loop holds besides the pool's state: processes, and the callers' mailboxes."""

    spec: dict
    state: PoolState
    cond: threading.Condition = field(default_factory=threading.Condition)
    processes: dict[int, tuple[int, subprocess.Popen]] = field(default_factory=dict)  # slot -> (generation, process)
    outboxes: dict[int, queue.Queue] = field(default_factory=dict)
    job_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


def _worker_env() -> dict:
    # The worker must import the same `appliance` (and, in tests, the same test factories) as we do.
    package_root = str(Path(__file__).resolve().parents[3])
    paths = [package_root, os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _apply(edge: _Edge, event: PoolEvent) -> None:
    with edge.cond:
        edge.state, effects = apply_pool_event(edge.state, event)
        for effect in effects:
            _perform(edge, effect)
        edge.cond.notify_all()


def _perform(edge: _Edge, effect: PoolEffect) -> None:
    # Caller holds edge.cond. Nothing here blocks for long: a pipe write, a fork, a queue put.
    if isinstance(effect, SpawnWorker):
        _spawn(edge, effect.worker, effect.generation)
    elif isinstance(effect, SendToWorker):
        _send(edge, effect.worker, effect.generation, effect.message)
    elif isinstance(effect, KillWorker):
        generation, process = edge.processes.get(effect.worker, (None, None))
        if generation == effect.generation and process is not None:
            _kill(process)
    elif isinstance(effect, ScheduleRestart):
        timer = threading.Timer(
            effect.delay_s, lambda: _apply(edge, RestartDue(effect.worker, effect.generation, time.monotonic()))
        )
        timer.daemon = True
        timer.start()
    elif isinstance(effect, DeliverEvent):
        if effect.job_id in edge.outboxes:
            edge.outboxes[effect.job_id].put(effect.event)
    elif isinstance(effect, FinishJob):
        outbox = edge.outboxes.pop(effect.job_id, None)
        if outbox is not None:
            outbox.put(effect.outcome)


def _spawn(edge: _Edge, worker: int, generation: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance.engine.run_engine_worker", json.dumps(edge.spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=_worker_env(),
        start_new_session=True,  # a Ctrl-C in the console reaches the portal, which shuts workers down
    )
    edge.processes[worker] = (generation, process)
    threading.Thread(target=_read_worker, args=(edge, worker, generation, process), daemon=True).start()


def _send(edge: _Edge, worker: int, generation: int, message: dict) -> None:
    current, process = edge.processes.get(worker, (None, None))
    if current != generation or process is None or process.stdin is None:
        return
    try:
        process.stdin.write(json.dumps(message) + "\n")
        process.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the reader sees the exit and reports it


def _decode(worker: int, generation: int, message: dict, at: float) -> PoolEvent | None:
    """A worker's protocol line as a pool event; None for anything that is not one."""
    try:
        if message.get("type") == "ready":
            return WorkerReady(
                worker,
                generation,
                str(message["kind"]),
                str(message["model_id"]),
                int(message["n_ctx"]),
                at,
                max(1, int(message.get("sequences", 1))),
            )
        if message.get("type") == "failed":
            return WorkerLoadFailed(
                worker, generation, str(message.get("code", "engine_unavailable")), str(message["message"])
            )
        if "error" in message:
            error = message["error"]
            return WorkerRefused(
                worker,
                generation,
                int(message["id"]),
                str(error["code"]),
                str(error["message"]),
                int(error.get("status", 500)),
                at,
            )
        if "event" in message:
            return WorkerStreamed(worker, generation, int(message["id"]), ChatEvent(**message["event"]), at)
    except (KeyError, TypeError, ValueError):
        pass
    return None


def _read_worker(edge: _Edge, worker: int, generation: int, process: subprocess.Popen) -> None:
    for line in process.stdout or ():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue  # stray output cannot be a protocol message
        event = _decode(worker, generation, message, time.monotonic()) if isinstance(message, dict) else None
        if event is not None:
            _apply(edge, event)
    _apply(edge, WorkerExited(worker, generation, process.wait(), time.monotonic()))


def _watch_clock(edge: _Edge) -> None:
    while not edge.state.closed:
        time.sleep(min(1.0, edge.state.hang_timeout_s / 4))
        _apply(edge, ClockTicked(time.monotonic()))


def _stream_chat(edge: _Edge, request: ChatRequest, cancel: CancelSignal) -> ChatStream:
    outbox: queue.Queue = queue.Queue()
    with edge.cond:
        job_id = next(edge.job_ids)
        edge.outboxes[job_id] = outbox
    _apply(edge, ChatSubmitted(job_id, request, time.monotonic()))
    finished, cancel_sent = False, False
    try:
        while True:
            if cancel.is_set() and not cancel_sent:
                cancel_sent = True
                _apply(edge, ChatCancelled(job_id))
            try:
                item = outbox.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if isinstance(item, EngineError):
                finished = True
                raise item
            finished = item.kind == "done"
            yield item
            if finished:
                return
    finally:
        if not finished:
            _apply(edge, ChatCancelled(job_id))  # the consumer went away (client disconnected): free the worker


def _describe_speed(speed: EngineSpeed | None) -> dict:
    if speed is None:
        return {"prefill_tokens_per_s": None, "decode_tokens_per_s": None, "speed_age_s": None}
    return {
        "prefill_tokens_per_s": round(speed.prefill_tokens_per_s, 1),
        "decode_tokens_per_s": round(speed.decode_tokens_per_s, 1),
        # Its age, not its time: a peer reads it without trusting this unit's clock.
        "speed_age_s": round(max(0.0, time.monotonic() - speed.measured_at), 1),
    }


def _describe_status(edge: _Edge) -> dict:
    with edge.cond:
        state = edge.state
    ready = sum(w.phase == "ready" for w in state.workers)
    start_in = estimate_start_delay(state)
    phase = "closed" if state.closed else "failed" if state.broken is not None else "ready" if ready else "starting"
    return {
        "state": phase,
        "workers": len(state.workers),
        "workers_ready": ready,
        # Places a chat runs in at once: a worker decodes `sequences` chats together.
        "slots_ready": sum(w.sequences for w in state.workers if w.phase == "ready"),
        "busy": sum(len(w.job_ids) for w in state.workers),
        "queued": sum(len(ids) for ids in state.waiting.values()),
        "queue_limit": state.limits.max_queued,
        "load_error": state.load_failure.message if state.load_failure else None,
        "failure": state.broken,
        "model": state.model_id or None,
        "start_in_s": None if start_in is None else round(start_in, 1),
        **_describe_speed(state.speed),
    }


def _close(edge: _Edge) -> None:
    _apply(edge, PoolClosing())
    with edge.cond:
        processes = [process for _, process in edge.processes.values()]
    for process in processes:
        try:
            process.wait(timeout=_SHUTDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill(process)


def _wait_until_started(edge: _Edge, timeout: float) -> bool:
    """Wait for one ready worker, a broken build, or every worker having failed its load; True if usable."""
    deadline = time.monotonic() + timeout
    with edge.cond:
        while True:
            state = edge.state
            if any(w.phase == "ready" for w in state.workers) or state.broken is not None:
                return True
            if state.load_failure is not None and all(w.failures or w.phase == "stopped" for w in state.workers):
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            edge.cond.wait(remaining)


def start_engine_pool(
    spec: dict,
    *,
    workers: int = 1,
    hang_timeout: float = 120.0,
    ready_timeout: float = 300.0,
    limits: PoolLimits | None = None,
) -> Engine:
    """Start `workers` engine processes from `spec` and return an Engine that schedules onto them.

    Raises EngineError when no worker can load the engine (bad model path, missing library...). A build
    that dies on this CPU does not raise: the pool reports it (describe_status()["state"] == "failed").
    """
    edge = _Edge(
        spec=spec,
        state=PoolState(
            workers=tuple(WorkerSlot(index=i) for i in range(max(1, workers))),
            hang_timeout_s=hang_timeout,
            limits=limits or PoolLimits(),
        ),
    )
    _apply(edge, PoolStarted(time.monotonic()))
    if not _wait_until_started(edge, ready_timeout):
        failure = edge.state.load_failure
        _close(edge)
        if failure is not None:
            raise EngineError(failure.code, failure.message, 503)
        raise EngineError("engine_unavailable", f"The engine did not start within {ready_timeout:g} s.", 503)
    threading.Thread(target=_watch_clock, args=(edge,), daemon=True).start()
    return Engine(
        # A build that failed before any worker was ready: name what was asked for.
        kind=edge.state.kind or str(spec.get("kind", "")),
        model_id=edge.state.model_id or str(spec.get("kwargs", {}).get("model_id", "")),
        n_ctx=edge.state.n_ctx,
        stream_chat=lambda request, cancel: _stream_chat(edge, request, cancel),
        close=lambda: _close(edge),
        describe_status=lambda: _describe_status(edge),
    )


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
