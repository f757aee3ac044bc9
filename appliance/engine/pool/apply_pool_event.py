"""The engine pool's transitions: one event in, the new state and the effects to perform out (pure)."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from typing import Any

from appliance.engine.describe_exit import describe_exit
from appliance.engine.engine_types import ChatEvent, EngineError
from appliance.engine.pool.pool_types import (
    BROKEN_AFTER_DEATHS,
    MAX_RESTART_DELAY_S,
    RECHECK_BROKEN_AFTER_S,
    ChatCancelled,
    ChatSubmitted,
    ClockTicked,
    DeliverEvent,
    EngineSpeed,
    FinishJob,
    KillWorker,
    LoadFailure,
    PoolClosing,
    PoolEffect,
    PoolEvent,
    PoolJob,
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
from appliance.route_event import route_event

Step = tuple[PoolState, list[PoolEffect]]
_SHUTTING_DOWN = EngineError("engine_unavailable", "The engine is shutting down.", 503)
_BUILD_SIGNALS = (-signal.SIGILL,)
_EARLY_SIGNALS = (-signal.SIGSEGV, -signal.SIGBUS)
_MEAN_WEIGHT = 0.2  # of the newest chat in mean_chat_s: a few chats move it
_MAX_RETRY_AFTER_S = 300.0
_MIN_TIMED_S = 1e-3  # a span shorter than this is read as this (no division by zero on a coarse clock)


def _replace_worker(state: PoolState, worker: WorkerSlot) -> PoolState:
    return dataclasses.replace(state, workers=tuple(worker if w.index == worker.index else w for w in state.workers))


def _current(state: PoolState, index: int, generation: int) -> WorkerSlot | None:
    """The worker slot, if the event comes from its current process."""
    if 0 <= index < len(state.workers) and state.workers[index].generation == generation:
        return state.workers[index]
    return None


def _encode_request(job: PoolJob) -> dict:
    request = job.request
    return {
        "messages": list(request.messages),
        "params": dataclasses.asdict(request.params),
        "client_key": request.client_key,
        "fit_history": request.fit_history,
        "reply_prefix": request.reply_prefix,
    }


def _broken_error(state: PoolState) -> EngineError:
    return EngineError("engine_broken", f"The engine cannot run on this unit: {state.broken}", 503)


def _dispatch(state: PoolState, effects: list[PoolEffect], at: float) -> PoolState:
    """Start queued jobs on ready workers with a free sequence, clients in round-robin order; each on the
    worker running fewest, so chats spread over idle workers before any worker decodes two."""
    while state.turn:
        free = [w for w in state.workers if w.phase == "ready" and len(w.job_ids) < w.sequences]
        if not free:
            break
        state = _start_next(state, min(free, key=lambda w: len(w.job_ids)), effects, at)
    return state


def _start_next(state: PoolState, worker: WorkerSlot, effects: list[PoolEffect], at: float) -> PoolState:
    client, *rest = state.turn
    job_id, *later = state.waiting[client]
    waiting = (
        {**state.waiting, client: tuple(later)}
        if later
        else {c: ids for c, ids in state.waiting.items() if c != client}
    )
    job = dataclasses.replace(state.jobs[job_id], worker=worker.index, started_at=at)
    state = dataclasses.replace(
        state, waiting=waiting, turn=tuple(rest) + ((client,) if later else ()), jobs={**state.jobs, job_id: job}
    )
    # A busy worker's clock is its stream's: only a worker that was idle starts its hang watch now.
    activity = at if not worker.job_ids else worker.last_activity
    state = _replace_worker(
        state, dataclasses.replace(worker, job_ids=worker.job_ids + (job_id,), last_activity=activity)
    )
    effects.append(
        SendToWorker(worker.index, worker.generation, {"op": "chat", "id": job_id, "request": _encode_request(job)})
    )
    return state


def _finish(state: PoolState, job_id: int, outcome: ChatEvent | EngineError, effects: list[PoolEffect]) -> PoolState:
    """End a job (running or queued) with its last item."""
    job = state.jobs.get(job_id)
    if job is None:
        return state
    effects.append(FinishJob(job_id, outcome))
    jobs = {i: j for i, j in state.jobs.items() if i != job_id}
    client = job.request.client_key
    if job.worker is None and job_id in state.waiting.get(client, ()):
        left = tuple(i for i in state.waiting[client] if i != job_id)
        waiting = (
            {**state.waiting, client: left} if left else {c: ids for c, ids in state.waiting.items() if c != client}
        )
        turn = state.turn if left else tuple(c for c in state.turn if c != client)
        return dataclasses.replace(state, jobs=jobs, waiting=waiting, turn=turn)
    if job.worker is not None:
        worker = state.workers[job.worker]
        if job_id in worker.job_ids:
            state = _replace_worker(
                state, dataclasses.replace(worker, job_ids=tuple(i for i in worker.job_ids if i != job_id))
            )
    return dataclasses.replace(state, jobs=jobs)


def _fail_waiting(state: PoolState, error: EngineError, effects: list[PoolEffect]) -> PoolState:
    for job_id in [i for ids in state.waiting.values() for i in ids]:
        state = _finish(state, job_id, error, effects)
    return state


def _spawn(state: PoolState, worker: WorkerSlot, effects: list[PoolEffect], at: float) -> PoolState:
    fresh = dataclasses.replace(
        worker, generation=worker.generation + 1, phase="starting", job_ids=(), hang_killed=False, last_activity=at
    )
    effects.append(SpawnWorker(fresh.index, fresh.generation))
    return _replace_worker(state, fresh)


def _start(state: PoolState, event: PoolStarted) -> Step:
    effects: list[PoolEffect] = []
    for worker in state.workers:
        state = _spawn(state, worker, effects, event.at)
    return state, effects


def _submit(state: PoolState, event: ChatSubmitted) -> Step:
    effects: list[PoolEffect] = []
    refusal = None
    if state.closed:
        refusal = _SHUTTING_DOWN
    elif state.broken is not None:
        refusal = _broken_error(state)
    elif state.load_failure is not None and not any(w.phase == "ready" for w in state.workers):
        refusal = EngineError(state.load_failure.code, state.load_failure.message, 503)
    if refusal is None:
        refusal = _refuse_for_load(state, event.request.client_key)
    if refusal is not None:
        return state, [FinishJob(event.job_id, refusal)]
    client = event.request.client_key
    state = dataclasses.replace(
        state,
        jobs={**state.jobs, event.job_id: PoolJob(job_id=event.job_id, request=event.request)},
        waiting={**state.waiting, client: state.waiting.get(client, ()) + (event.job_id,)},
        turn=state.turn if client in state.waiting else state.turn + (client,),
    )
    return _dispatch(state, effects, event.at), effects


def _refuse_for_load(state: PoolState, client: str) -> EngineError | None:
    """The client already has its share of chats, or the queue is full: refused now, never queued."""
    limits = state.limits
    mine = sum(job.request.client_key == client for job in state.jobs.values())
    # "" is the unit itself (a check, a benchmark): never a phone, whose requests always carry a key.
    if client and mine >= limits.chats_per_client:
        return EngineError(
            "too_many_chats",
            f"This device already has {mine} chats running or waiting; wait for one to finish.",
            429,
            retry_after_s=state.mean_chat_s,
        )
    queued = sum(len(ids) for ids in state.waiting.values())
    if queued >= limits.max_queued:
        workers = max(1, sum(w.phase == "ready" for w in state.workers))
        return EngineError(
            "unit_busy",
            f"The unit is answering {len(state.jobs)} chats; please try again shortly.",
            503,
            retry_after_s=min(_MAX_RETRY_AFTER_S, state.mean_chat_s * (queued + workers) / workers),
        )
    return None


def _cancel(state: PoolState, event: ChatCancelled) -> Step:
    job = state.jobs.get(event.job_id)
    if job is None:
        return state, []
    if job.worker is None:
        effects: list[PoolEffect] = []
        return _finish(state, event.job_id, ChatEvent("done", finish_reason="cancelled"), effects), effects
    worker = state.workers[job.worker]
    return state, [SendToWorker(worker.index, worker.generation, {"op": "cancel", "id": event.job_id})]


def _ready(state: PoolState, event: WorkerReady) -> Step:
    worker = _current(state, event.worker, event.generation)
    if worker is None or worker.phase != "starting":
        return state, []
    effects: list[PoolEffect] = []
    state = _replace_worker(
        state,
        dataclasses.replace(
            worker, phase="ready", failures=0, last_activity=event.at, sequences=max(1, event.sequences)
        ),
    )
    speed = state.speed if event.model_id == state.model_id else None  # another model's speed says nothing
    state = dataclasses.replace(
        state, kind=event.kind, model_id=event.model_id, n_ctx=event.n_ctx, load_failure=None, speed=speed
    )
    return _dispatch(state, effects, event.at), effects


def _load_failed(state: PoolState, event: WorkerLoadFailed) -> Step:
    if _current(state, event.worker, event.generation) is None:
        return state, []
    # The worker exits next; WorkerExited restarts it (with backoff) or gives up on waiting chats.
    return dataclasses.replace(state, load_failure=LoadFailure(event.code, event.message)), []


def _running_job(state: PoolState, worker: WorkerSlot | None, job_id: int) -> PoolJob | None:
    if worker is None or job_id not in worker.job_ids:
        return None  # a late event of a job that already ended (cancelled while queued, say)
    return state.jobs.get(job_id)


def _streamed(state: PoolState, event: WorkerStreamed) -> Step:
    worker = _current(state, event.worker, event.generation)
    job = _running_job(state, worker, event.job_id)
    if job is None or worker is None:
        return state, []
    effects: list[PoolEffect] = []
    state = _replace_worker(state, dataclasses.replace(worker, last_activity=event.at))
    if event.event.kind == "done":
        state = _finish(state, job.job_id, event.event, effects)
        # A chat answered: the build works here; and one more measure of how long a chat takes.
        mean = (1 - _MEAN_WEIGHT) * state.mean_chat_s + _MEAN_WEIGHT * max(0.0, event.at - job.started_at)
        speed = _measure_speed(state.speed, job, event.event, event.at)
        state = dataclasses.replace(state, suspect_deaths=0, mean_chat_s=mean, speed=speed)
        return _dispatch(state, effects, event.at), effects
    if event.event.kind == "start":
        job = dataclasses.replace(job, accepted_at=event.at, prompt_tokens=event.event.prompt_tokens)
        state = dataclasses.replace(state, jobs={**state.jobs, job.job_id: job})
    if event.event.kind == "delta" and not job.streamed:
        job = dataclasses.replace(job, streamed=True, first_token_at=event.at)
        state = dataclasses.replace(state, jobs={**state.jobs, job.job_id: job})
    return state, [DeliverEvent(job.job_id, event.event)]


def _measure_speed(old: EngineSpeed | None, job: PoolJob, done: ChatEvent, at: float) -> EngineSpeed | None:
    """The smoothed speeds with this chat's; a chat that was cut short, or too short to time, leaves them."""
    if (
        done.finish_reason not in ("stop", "length")
        or job.accepted_at is None
        or job.first_token_at is None
        or job.prompt_tokens < 1
        or done.completion_tokens < 2
    ):
        return old
    # The prompt is evaluated between the engine's "start" and the first piece of the reply; the rest of the
    # reply (all tokens but the first) comes after it.
    prefill = job.prompt_tokens / max(job.first_token_at - job.accepted_at, _MIN_TIMED_S)
    decode = (done.completion_tokens - 1) / max(at - job.first_token_at, _MIN_TIMED_S)
    if old is None:
        return EngineSpeed(prefill, decode, at)
    return EngineSpeed(
        (1 - _MEAN_WEIGHT) * old.prefill_tokens_per_s + _MEAN_WEIGHT * prefill,
        (1 - _MEAN_WEIGHT) * old.decode_tokens_per_s + _MEAN_WEIGHT * decode,
        at,
    )


def _refused(state: PoolState, event: WorkerRefused) -> Step:
    worker = _current(state, event.worker, event.generation)
    job = _running_job(state, worker, event.job_id)
    if job is None or worker is None:
        return state, []
    effects: list[PoolEffect] = []
    state = _replace_worker(state, dataclasses.replace(worker, last_activity=event.at))
    state = _finish(state, job.job_id, EngineError(event.code, event.message, event.status), effects)
    return _dispatch(state, effects, event.at), effects


def _points_at_build(worker: WorkerSlot, jobs: list[PoolJob], returncode: int) -> bool:
    """A death that one request cannot explain: an illegal instruction, or a crash before any output."""
    if worker.hang_killed:
        return False
    if returncode in _BUILD_SIGNALS:
        return True
    before_first_token = worker.phase == "starting" or (bool(jobs) and not any(job.streamed for job in jobs))
    return returncode in _EARLY_SIGNALS and before_first_token


def _describe_broken(returncode: int, deaths: int) -> str:
    how = describe_exit(returncode)
    if returncode in _BUILD_SIGNALS:
        return (
            f"its worker was {how}, {deaths} times in a row. llama.cpp was built for instructions this CPU or "
            f"its OS does not allow: rebuild it for this machine (scripts/dev setup) or install the unit's "
            f"package for this board."
        )
    return (
        f"its worker was {how} before answering, {deaths} times in a row: the engine build or the model does "
        f"not work on this unit."
    )


def _death_error(worker: WorkerSlot, state: PoolState, returncode: int) -> EngineError:
    if worker.hang_killed:
        return EngineError(
            "engine_timeout",
            f"The engine produced nothing for {state.hang_timeout_s:g} s and was restarted. Please retry.",
            504,
        )
    return EngineError(
        "engine_failed",
        f"The engine stopped unexpectedly ({describe_exit(returncode)}) and is restarting. Please retry.",
        502,
    )


def _exited(state: PoolState, event: WorkerExited) -> Step:
    worker = _current(state, event.worker, event.generation)
    if worker is None or worker.phase == "stopped":
        return state, []
    effects: list[PoolEffect] = []
    jobs = [state.jobs[i] for i in worker.job_ids if i in state.jobs]
    suspect = _points_at_build(worker, jobs, event.returncode)
    deaths = state.suspect_deaths + 1 if suspect else 0
    state = dataclasses.replace(state, suspect_deaths=deaths)
    if suspect and deaths >= BROKEN_AFTER_DEATHS and not state.closed:
        state = dataclasses.replace(state, broken=_describe_broken(event.returncode, deaths), broken_at=event.at)
    if worker.phase == "starting" and state.load_failure is None and not suspect:
        state = dataclasses.replace(
            state,
            load_failure=LoadFailure(
                "engine_unavailable", f"The engine stopped while loading its model ({describe_exit(event.returncode)})."
            ),
        )
    for job in jobs:  # every chat the process decoded dies with it
        outcome = _broken_error(state) if state.broken is not None else _death_error(worker, state, event.returncode)
        state = _finish(state, job.job_id, outcome, effects)
    worker = state.workers[worker.index]
    if state.closed or state.broken is not None:
        state = _replace_worker(state, dataclasses.replace(worker, phase="stopped", job_ids=()))
        if state.broken is not None:
            state = _stop_all(state, _broken_error(state), effects)
        return state, effects
    failures = worker.failures + 1
    state = _replace_worker(state, dataclasses.replace(worker, phase="restarting", job_ids=(), failures=failures))
    if state.load_failure is not None and not any(w.phase == "ready" for w in state.workers):
        state = _fail_waiting(state, EngineError(state.load_failure.code, state.load_failure.message, 503), effects)
    delay = 0.0 if failures == 1 else min(MAX_RESTART_DELAY_S, 0.5 * 2 ** (failures - 1))
    effects.append(ScheduleRestart(worker.index, worker.generation, delay))
    return state, effects


def _stop_all(state: PoolState, error: EngineError, effects: list[PoolEffect]) -> PoolState:
    """Broken: fail every job, stop every worker; nothing restarts until the recheck."""
    for job_id in list(state.jobs):
        state = _finish(state, job_id, error, effects)
    for worker in state.workers:
        if worker.phase in ("starting", "ready"):
            effects.append(KillWorker(worker.index, worker.generation))
        state = _replace_worker(state, dataclasses.replace(worker, phase="stopped", job_ids=()))
    return state


def _restart(state: PoolState, event: RestartDue) -> Step:
    worker = _current(state, event.worker, event.generation)
    if worker is None or worker.phase != "restarting" or state.closed or state.broken is not None:
        return state, []
    effects: list[PoolEffect] = []
    return _spawn(state, worker, effects, event.at), effects


def _tick(state: PoolState, event: ClockTicked) -> Step:
    effects: list[PoolEffect] = []
    if state.closed:
        return state, effects
    if state.broken is not None and event.at - state.broken_at >= RECHECK_BROKEN_AFTER_S:
        # Try again; one more death of the same kind breaks it again at once.
        state = dataclasses.replace(state, broken=None, suspect_deaths=BROKEN_AFTER_DEATHS - 1)
        for worker in state.workers:
            state = _spawn(state, dataclasses.replace(worker, failures=0), effects, event.at)
        return state, effects
    for worker in state.workers:
        stuck = bool(worker.job_ids) and event.at - worker.last_activity > state.hang_timeout_s
        if stuck and not worker.hang_killed:
            state = _replace_worker(state, dataclasses.replace(worker, hang_killed=True))
            effects.append(KillWorker(worker.index, worker.generation))
    return state, effects


def _close(state: PoolState, event: PoolClosing) -> Step:
    if state.closed:
        return state, []
    effects: list[PoolEffect] = []
    state = dataclasses.replace(state, closed=True)
    state = _fail_waiting(state, _SHUTTING_DOWN, effects)
    for worker in state.workers:
        if worker.phase in ("starting", "ready"):
            effects.append(SendToWorker(worker.index, worker.generation, {"op": "shutdown"}))
    return state, effects


_TRANSITIONS: dict[type, Callable[[PoolState, Any], Step]] = {
    PoolStarted: _start,
    ChatSubmitted: _submit,
    ChatCancelled: _cancel,
    WorkerReady: _ready,
    WorkerLoadFailed: _load_failed,
    WorkerStreamed: _streamed,
    WorkerRefused: _refused,
    WorkerExited: _exited,
    RestartDue: _restart,
    ClockTicked: _tick,
    PoolClosing: _close,
}


def apply_pool_event(state: PoolState, event: PoolEvent) -> Step:
    """The pool after `event`, and the effects the edge must perform, in order; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "engine pool")
