"""A supervised pool of engine worker processes behind the one Engine interface.

Requests queue fairly (round robin between clients, so one phone cannot starve the others) and run
on the first free worker. A worker that crashes or stops producing tokens for `hang_timeout`
seconds is killed and restarted; only the request it was running gets an error.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from appliance.engine.engine_types import ChatEvent, ChatRequest, Engine, EngineError

_POLL_SECONDS = 0.1
_MAX_RESTART_DELAY = 30.0


@dataclasses.dataclass(eq=False)
class _Job:
    job_id: int
    request: ChatRequest
    events: queue.Queue = dataclasses.field(default_factory=queue.Queue)
    worker: "_Worker | None" = None
    finished: bool = False


@dataclasses.dataclass(eq=False)
class _Worker:
    index: int
    process: subprocess.Popen | None = None
    ready: bool = False
    job: _Job | None = None
    last_activity: float = 0.0
    kill_reason: str = ""
    failures: int = 0


def _worker_env() -> dict:
    # The worker must import the same `appliance` (and, in tests, the same test factories) as we do.
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _encode_request(request: ChatRequest) -> dict:
    return {
        "messages": list(request.messages),
        "params": dataclasses.asdict(request.params),
        "client_key": request.client_key,
    }


def start_engine_pool(
    spec: dict,
    *,
    workers: int = 1,
    hang_timeout: float = 120.0,
    ready_timeout: float = 300.0,
) -> Engine:
    """Start `workers` engine processes from `spec` and return an Engine that schedules onto them.

    Raises EngineError when no worker can load the engine (bad model path, missing library...).
    """
    cond = threading.Condition()
    pending: dict[str, collections.deque[_Job]] = {}
    turn: collections.deque[str] = collections.deque()  # clients with pending jobs, in round-robin order
    pool = [_Worker(index=i) for i in range(max(1, workers))]
    info: dict = {"kind": "", "model_id": "", "n_ctx": 0, "load_error": None, "closed": False}
    job_ids = iter(range(1, 1 << 62))

    def send(worker: _Worker, message: dict) -> None:
        try:
            worker.process.stdin.write(json.dumps(message) + "\n")
            worker.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the reader thread sees the exit and reports it

    def finish(job: _Job, item) -> None:
        job.finished = True
        job.events.put(item)

    def dispatch() -> None:
        # Caller holds cond.
        for worker in pool:
            if not turn:
                return
            if worker.ready and worker.job is None:
                client = turn.popleft()
                job = pending[client].popleft()
                if pending[client]:
                    turn.append(client)
                else:
                    del pending[client]
                worker.job, job.worker = job, worker
                worker.last_activity = time.monotonic()
                send(worker, {"op": "chat", "id": job.job_id, "request": _encode_request(job.request)})

    def fail_pending(error: EngineError) -> None:
        # Caller holds cond.
        for jobs in pending.values():
            for job in jobs:
                finish(job, error)
        pending.clear()
        turn.clear()

    def spawn(worker: _Worker) -> None:
        worker.ready, worker.job, worker.kill_reason = False, None, ""
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.engine.run_engine_worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=_worker_env(),
            start_new_session=True,  # a Ctrl-C in the console reaches the portal, which shuts workers down
        )
        worker.last_activity = time.monotonic()
        threading.Thread(target=read_worker, args=(worker, worker.process), daemon=True).start()

    def on_message(worker: _Worker, message: dict) -> None:
        # Caller holds cond.
        worker.last_activity = time.monotonic()
        if message.get("type") == "ready":
            worker.ready, worker.failures = True, 0
            info.update(kind=message["kind"], model_id=message["model_id"], n_ctx=message["n_ctx"], load_error=None)
            dispatch()
            cond.notify_all()
            return
        if message.get("type") == "failed":
            info["load_error"] = EngineError(message.get("code", "engine_unavailable"), message["message"], 503)
            return
        job = worker.job
        if job is None or message.get("id") != job.job_id:
            return  # a late event of a job already ended (e.g. cancelled while queued)
        if "error" in message:
            err = message["error"]
            finish(job, EngineError(err["code"], err["message"], err.get("status", 500)))
        else:
            event = ChatEvent(**message["event"])
            if event.kind == "done":
                finish(job, event)
            else:
                job.events.put(event)
        if job.finished:
            worker.job = None
            dispatch()

    def on_exit(worker: _Worker, process: subprocess.Popen) -> None:
        # Caller holds cond.
        code = process.wait()
        if worker.process is not process:
            return
        worker.ready = False
        if worker.job is not None:
            if worker.kill_reason == "hang":
                error = EngineError(
                    "engine_timeout",
                    f"The engine produced nothing for {hang_timeout:g} s and was restarted. Please retry.",
                    504,
                )
            else:
                error = EngineError(
                    "engine_failed",
                    f"The engine stopped unexpectedly (exit code {code}) and is restarting. Please retry.",
                    502,
                )
            finish(worker.job, error)
            worker.job = None
        if info["closed"]:
            return
        worker.failures += 1
        if not any(w.ready for w in pool) and info["load_error"] is not None:
            fail_pending(info["load_error"])
        delay = min(_MAX_RESTART_DELAY, 0.5 * 2 ** (worker.failures - 1)) if worker.failures > 1 else 0.0
        threading.Timer(delay, restart, args=(worker, process)).start()
        cond.notify_all()

    def restart(worker: _Worker, dead: subprocess.Popen) -> None:
        with cond:
            if not info["closed"] and worker.process is dead:
                spawn(worker)

    def read_worker(worker: _Worker, process: subprocess.Popen) -> None:
        for line in process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue  # stray output cannot be a protocol message
            with cond:
                if worker.process is process:
                    on_message(worker, message)
        with cond:
            on_exit(worker, process)

    def watch_hangs() -> None:
        while not info["closed"]:
            time.sleep(min(1.0, hang_timeout / 4))
            with cond:
                now = time.monotonic()
                for worker in pool:
                    if worker.job is not None and now - worker.last_activity > hang_timeout and not worker.kill_reason:
                        worker.kill_reason = "hang"
                        _kill(worker.process)

    def cancel(job: _Job) -> None:
        with cond:
            if job.finished:
                return
            if job.worker is None:
                client = job.request.client_key
                if job in pending.get(client, ()):
                    pending[client].remove(job)
                    if not pending[client]:
                        del pending[client]
                        turn.remove(client)
                finish(job, ChatEvent("done", finish_reason="cancelled"))
            else:
                send(job.worker, {"op": "cancel", "id": job.job_id})

    def stream_chat(request: ChatRequest, cancel_event: threading.Event) -> Iterator[ChatEvent]:
        with cond:
            if info["closed"]:
                raise EngineError("engine_unavailable", "The engine is shutting down.", 503)
            if info["load_error"] is not None and not any(w.ready for w in pool):
                raise info["load_error"]
            job = _Job(job_id=next(job_ids), request=request)
            client = request.client_key
            if client not in pending:
                pending[client] = collections.deque()
                turn.append(client)
            pending[client].append(job)
            dispatch()
        cancel_sent = False
        try:
            while True:
                if cancel_event.is_set() and not cancel_sent:
                    cancel_sent = True
                    cancel(job)
                try:
                    item = job.events.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    continue
                if isinstance(item, EngineError):
                    raise item
                yield item
                if item.kind == "done":
                    return
        finally:
            if not job.finished:
                cancel(job)  # the consumer went away (client disconnected): free the worker

    def describe_status() -> dict:
        with cond:
            return {
                "workers": len(pool),
                "workers_ready": sum(w.ready for w in pool),
                "busy": sum(w.job is not None for w in pool),
                "queued": sum(len(jobs) for jobs in pending.values()),
                "load_error": info["load_error"].message if info["load_error"] else None,
            }

    def close() -> None:
        with cond:
            info["closed"] = True
            fail_pending(EngineError("engine_unavailable", "The engine is shutting down.", 503))
            processes = [w.process for w in pool if w.process]
            for process in processes:
                send(next(w for w in pool if w.process is process), {"op": "shutdown"})
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill(process)

    with cond:
        for worker in pool:
            spawn(worker)
        deadline = time.monotonic() + ready_timeout
        # Wait for one ready worker, or for every worker to have failed its load.
        while not any(w.ready for w in pool):
            if info["load_error"] is not None and all(w.failures for w in pool):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            cond.wait(remaining)
        started = any(w.ready for w in pool)
        error = info["load_error"]
    if not started:
        close()
        raise error or EngineError("engine_unavailable", f"The engine did not start within {ready_timeout:g} s.", 503)
    threading.Thread(target=watch_hangs, daemon=True).start()
    return Engine(
        kind=info["kind"],
        model_id=info["model_id"],
        n_ctx=info["n_ctx"],
        stream_chat=stream_chat,
        close=close,
        describe_status=describe_status,
    )


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
