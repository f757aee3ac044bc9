"""The engine pool's transitions, one event at a time: no processes, no threads, no clocks."""

import signal

import pytest

from appliance.engine.engine_types import ChatEvent, ChatParams, ChatRequest
from appliance.engine.pool.apply_pool_event import apply_pool_event
from appliance.engine.pool.pool_types import (
    BROKEN_AFTER_DEATHS,
    RECHECK_BROKEN_AFTER_S,
    ChatCancelled,
    ChatSubmitted,
    ClockTicked,
    DeliverEvent,
    FinishJob,
    KillWorker,
    PoolClosing,
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

SIGILL, SIGSEGV, SIGKILL = -signal.SIGILL, -signal.SIGSEGV, -signal.SIGKILL


def _request(client="c", prompt="hi"):
    return ChatRequest(messages=({"role": "user", "content": prompt},), params=ChatParams(), client_key=client)


class Pool:
    """Feeds events, keeps the state, collects every effect."""

    def __init__(self, workers=1, hang_timeout=10.0, limits=None):
        self.state = PoolState(
            workers=tuple(WorkerSlot(index=i) for i in range(workers)),
            hang_timeout_s=hang_timeout,
            limits=limits or PoolLimits(),
        )
        self.effects = []
        self.apply(PoolStarted(at=0.0))

    def apply(self, event):
        self.state, effects = apply_pool_event(self.state, event)
        self.effects += effects
        return effects

    def generation(self, worker=0):
        return self.state.workers[worker].generation

    def ready(self, worker=0, at=1.0):
        return self.apply(WorkerReady(worker, self.generation(worker), "fake", "m", 256, at))

    def submit(self, job_id, client="c", at=2.0):
        return self.apply(ChatSubmitted(job_id, _request(client), at))

    def stream(self, job_id, kind, worker=0, at=3.0, text="x"):
        event = ChatEvent(kind, text=text if kind == "delta" else "", finish_reason="stop" if kind == "done" else None)
        return self.apply(WorkerStreamed(worker, self.generation(worker), job_id, event, at))

    def die(self, returncode, worker=0, at=4.0):
        return self.apply(WorkerExited(worker, self.generation(worker), returncode, at))

    def restart(self, worker=0, at=5.0):
        return self.apply(RestartDue(worker, self.generation(worker), at))


def _finished(effects, job_id):
    return [e.outcome for e in effects if isinstance(e, FinishJob) and e.job_id == job_id]


def test_start_spawns_every_worker_and_the_state_is_not_changed_in_place():
    pool = Pool(workers=2)
    assert pool.effects == [SpawnWorker(0, 1), SpawnWorker(1, 1)]
    before = pool.state
    pool.ready()
    assert before.workers[0].phase == "starting" and pool.state.workers[0].phase == "ready"


def test_a_chat_waits_for_a_ready_worker_then_is_sent():
    pool = Pool()
    assert pool.submit(1) == []
    assert pool.state.waiting == {"c": (1,)}
    sent = pool.ready()
    assert [type(e) for e in sent] == [SendToWorker]
    assert sent[0].message["op"] == "chat" and sent[0].message["id"] == 1
    assert pool.state.workers[0].job_ids == (1,) and pool.state.waiting == {}


def test_clients_take_turns():
    pool = Pool(limits=PoolLimits(chats_per_client=3))
    pool.ready()
    pool.submit(1, "x")  # runs
    for job_id, client in ((2, "a"), (3, "a"), (4, "a"), (5, "b"), (6, "c")):
        pool.submit(job_id, client)
    order = []
    job = 1
    for _ in range(5):
        sent = pool.stream(job, "done")
        job = next(e.message["id"] for e in sent if isinstance(e, SendToWorker))
        order.append(job)
    assert order == [2, 5, 6, 3, 4]


def test_a_client_over_its_share_is_refused_at_once_and_others_still_queue():
    pool = Pool(limits=PoolLimits(chats_per_client=2, max_queued=8))
    pool.ready()
    pool.submit(1, "ip:10.0.0.2")
    pool.submit(2, "ip:10.0.0.2")
    refused = pool.submit(3, "ip:10.0.0.2")
    (error,) = _finished(refused, 3)
    assert (error.code, error.status) == ("too_many_chats", 429) and error.retry_after_s > 0
    assert 3 not in pool.state.jobs and pool.state.waiting == {"ip:10.0.0.2": (2,)}
    assert pool.submit(4, "ip:10.0.0.3") == []  # another device queues
    pool.stream(1, "done")  # one of its chats ends: the device may ask again
    assert _finished(pool.submit(5, "ip:10.0.0.2"), 5) == []


def test_a_full_queue_is_a_503_with_a_retry_after_from_how_long_chats_take():
    pool = Pool(limits=PoolLimits(chats_per_client=2, max_queued=2))
    pool.ready(at=0.0)
    pool.submit(1, "a", at=0.0)
    pool.stream(1, "done", at=40.0)  # chats here take long: 40 s, against the first guess of 20 s
    pool.submit(2, "a", at=40.0)  # runs
    pool.submit(3, "b", at=40.0)
    pool.submit(4, "c", at=40.0)
    (error,) = _finished(pool.submit(5, "d", at=41.0), 5)
    assert (error.code, error.status) == ("unit_busy", 503)
    mean = 0.8 * 20.0 + 0.2 * 40.0
    assert pool.state.mean_chat_s == pytest.approx(mean)
    assert error.retry_after_s == pytest.approx(mean * 3)  # two waiting and one running, on one worker
    assert sorted(pool.state.jobs) == [2, 3, 4]


def test_the_unit_itself_is_not_limited_per_client():
    pool = Pool(limits=PoolLimits(chats_per_client=1, max_queued=8))
    pool.ready()
    for job_id in range(1, 5):
        assert _finished(pool.submit(job_id, ""), job_id) == []


def test_events_reach_the_caller_and_done_frees_the_worker():
    pool = Pool()
    pool.ready()
    pool.submit(1)
    assert pool.stream(1, "start") == [DeliverEvent(1, ChatEvent("start"))]
    assert pool.stream(1, "delta") == [DeliverEvent(1, ChatEvent("delta", text="x"))]
    done = pool.stream(1, "done")
    assert _finished(done, 1)[0].kind == "done"
    assert pool.state.workers[0].job_ids == () and 1 not in pool.state.jobs


def test_an_engine_refusal_ends_that_chat_only():
    pool = Pool()
    pool.ready()
    pool.submit(1)
    pool.submit(2)
    effects = pool.apply(WorkerRefused(0, pool.generation(), 1, "context_length_exceeded", "too long", 400, 3.0))
    assert _finished(effects, 1)[0].code == "context_length_exceeded"
    assert any(isinstance(e, SendToWorker) and e.message["id"] == 2 for e in effects)


def test_events_of_an_older_process_are_ignored():
    pool = Pool()
    pool.ready()
    pool.submit(1)
    old = pool.generation()
    pool.die(-signal.SIGKILL)
    pool.restart()
    assert pool.apply(WorkerStreamed(0, old, 1, ChatEvent("delta", text="late"), 6.0)) == []
    assert pool.apply(WorkerExited(0, old, 0, 6.0)) == []


def test_a_crash_fails_the_running_chat_and_restarts_at_once_then_backs_off():
    pool = Pool()
    pool.ready()
    pool.submit(1)
    pool.stream(1, "delta")
    effects = pool.die(SIGSEGV)
    error = _finished(effects, 1)[0]
    assert error.code == "engine_failed" and error.status == 502 and "SIGSEGV" in error.message
    assert ScheduleRestart(0, pool.generation(), 0.0) in effects
    pool.restart()
    delays = [e.delay_s for e in pool.die(SIGSEGV, at=7.0) if isinstance(e, ScheduleRestart)]
    assert delays == [1.0]  # a worker that dies again before it is ready waits longer each time


def test_a_crash_after_the_first_token_does_not_point_at_the_build():
    pool = Pool()
    for round_ in range(BROKEN_AFTER_DEATHS + 2):
        pool.ready()
        pool.submit(round_)
        pool.stream(round_, "delta")
        pool.die(SIGSEGV)
        pool.restart()
    assert pool.state.broken is None and pool.state.suspect_deaths == 0


def _die_before_first_token(pool, job_id, returncode):
    pool.ready()
    pool.submit(job_id)
    effects = pool.die(returncode)
    pool.restart()
    return effects


@pytest.mark.parametrize("returncode", [SIGILL, SIGSEGV, -signal.SIGBUS])
def test_deaths_in_a_row_that_point_at_the_build_stop_the_restarts(returncode):
    pool = Pool()
    for job_id in range(1, BROKEN_AFTER_DEATHS):
        effects = _die_before_first_token(pool, job_id, returncode)
        assert _finished(effects, job_id)[0].code == "engine_failed"
    pool.ready()
    pool.submit(99)
    pool.submit(100, client="other")  # waiting behind it
    effects = pool.die(returncode)
    assert pool.state.broken is not None
    for job_id in (99, 100):
        error = _finished(effects, job_id)[0]
        assert error.code == "engine_broken" and error.status == 503
        assert "cannot run on this unit" in error.message
    assert not any(isinstance(e, ScheduleRestart) for e in effects)
    assert pool.state.workers[0].phase == "stopped"
    if returncode == SIGILL:
        assert "illegal instruction" in pool.state.broken and "rebuild" in pool.state.broken
    # New chats are refused at once with the reason; nothing is spawned.
    refused = pool.submit(101)
    assert _finished(refused, 101)[0].code == "engine_broken" and len(refused) == 1


def test_sigill_while_loading_counts_too_and_other_workers_are_stopped():
    pool = Pool(workers=2)
    pool.ready(worker=1)
    for _ in range(BROKEN_AFTER_DEATHS):
        effects = pool.die(SIGILL, worker=0)
        pool.restart(worker=0)
    assert pool.state.broken is not None
    assert KillWorker(1, pool.generation(1)) in effects
    assert all(w.phase == "stopped" for w in pool.state.workers)


def test_an_answered_chat_resets_the_count():
    pool = Pool()
    for job_id in range(1, BROKEN_AFTER_DEATHS):
        _die_before_first_token(pool, job_id, SIGILL)
    pool.ready()
    pool.submit(10)
    pool.stream(10, "done")
    assert pool.state.suspect_deaths == 0
    pool.submit(11)
    pool.die(SIGILL)
    assert pool.state.broken is None and pool.state.suspect_deaths == 1


def test_a_broken_pool_tries_again_later_and_breaks_again_at_once():
    pool = Pool()
    for job_id in range(1, BROKEN_AFTER_DEATHS + 1):
        _die_before_first_token(pool, job_id, SIGILL)
    broken_at = pool.state.broken_at
    assert pool.apply(ClockTicked(broken_at + RECHECK_BROKEN_AFTER_S - 1)) == []
    effects = pool.apply(ClockTicked(broken_at + RECHECK_BROKEN_AFTER_S))
    assert effects == [SpawnWorker(0, pool.generation())] and pool.state.broken is None
    pool.ready()
    pool.submit(50)
    assert _finished(pool.die(SIGILL), 50)[0].code == "engine_broken"


def test_a_hung_worker_is_killed_and_its_death_is_no_build_fault():
    pool = Pool(hang_timeout=10.0)
    pool.ready()
    pool.submit(1, at=2.0)
    assert pool.apply(ClockTicked(11.0)) == []
    assert pool.apply(ClockTicked(12.5)) == [KillWorker(0, pool.generation())]
    assert pool.apply(ClockTicked(13.0)) == []  # killed once
    error = _finished(pool.die(SIGKILL, at=13.5), 1)[0]
    assert error.code == "engine_timeout" and error.status == 504
    assert pool.state.suspect_deaths == 0


def test_a_failed_load_fails_waiting_chats_with_its_reason():
    pool = Pool()
    pool.submit(1)
    pool.apply(WorkerLoadFailed(0, pool.generation(), "model_not_found", "no such file"))
    effects = pool.die(1)
    error = _finished(effects, 1)[0]
    assert (error.code, error.message, error.status) == ("model_not_found", "no such file", 503)
    assert _finished(pool.submit(2), 2)[0].code == "model_not_found"


def test_a_silent_death_while_loading_is_a_load_failure():
    pool = Pool()
    pool.die(3)
    assert pool.state.load_failure.code == "engine_unavailable"
    assert "exit code 3" in pool.state.load_failure.message


def test_cancel_while_waiting_ends_it_while_running_asks_the_worker():
    pool = Pool()
    pool.ready()
    pool.submit(1)
    pool.submit(2)
    effects = pool.apply(ChatCancelled(2))
    assert _finished(effects, 2)[0].finish_reason == "cancelled" and pool.state.waiting == {}
    assert pool.apply(ChatCancelled(1)) == [SendToWorker(0, pool.generation(), {"op": "cancel", "id": 1})]
    assert pool.apply(ChatCancelled(404)) == []


def test_closing_fails_waiting_chats_and_shuts_workers_down():
    pool = Pool(workers=2)
    pool.ready(worker=0)
    pool.submit(1)
    pool.submit(2)
    effects = pool.apply(PoolClosing())
    assert _finished(effects, 2)[0].code == "engine_unavailable"
    assert SendToWorker(0, 1, {"op": "shutdown"}) in effects and SendToWorker(1, 1, {"op": "shutdown"}) in effects
    assert not any(isinstance(e, ScheduleRestart) for e in pool.die(0))
    assert _finished(pool.submit(3), 3)[0].code == "engine_unavailable"


def test_unknown_events_are_refused():
    with pytest.raises(TypeError):
        apply_pool_event(Pool().state, object())


def _chat(pool, job_id, *, accepted, first, done, prompt=100, completion=21, finish="stop", worker=0):
    """A chat from the engine's "start" (prompt accepted) through its first piece to its end, at those times."""
    gen = pool.generation(worker)
    pool.submit(job_id, at=accepted - 0.1)
    pool.apply(WorkerStreamed(worker, gen, job_id, ChatEvent("start", prompt_tokens=prompt), accepted))
    pool.apply(WorkerStreamed(worker, gen, job_id, ChatEvent("delta", text="x"), first))
    end = ChatEvent("done", prompt_tokens=prompt, completion_tokens=completion, finish_reason=finish)
    pool.apply(WorkerStreamed(worker, gen, job_id, end, done))


def test_the_pool_measures_prefill_and_decode_speed_from_its_chats():
    pool = Pool()
    pool.ready()
    assert pool.state.speed is None
    # 100 prompt tokens in 0.5 s, then 20 more reply tokens in 2 s.
    _chat(pool, 1, accepted=10.0, first=10.5, done=12.5)
    speed = pool.state.speed
    assert (speed.prefill_tokens_per_s, speed.decode_tokens_per_s, speed.measured_at) == (200.0, 10.0, 12.5)
    # The next chat moves the figures by a fifth of the way: one slow chat does not swing them.
    _chat(pool, 2, accepted=20.0, first=21.0, done=23.0)
    speed = pool.state.speed
    assert speed.prefill_tokens_per_s == pytest.approx(0.8 * 200 + 0.2 * 100)
    assert speed.decode_tokens_per_s == pytest.approx(10.0) and speed.measured_at == 23.0


@pytest.mark.parametrize(
    "chat",
    [
        {"finish": "cancelled"},  # cut short: its pace says nothing
        {"completion": 1},  # one token: no decode time to measure
        {"prompt": 0},
    ],
)
def test_a_chat_that_cannot_be_timed_leaves_the_speed_alone(chat):
    pool = Pool()
    pool.ready()
    _chat(pool, 1, accepted=10.0, first=10.5, done=12.5)
    before = pool.state.speed
    _chat(pool, 2, accepted=20.0, first=20.1, done=20.2, **chat)
    assert pool.state.speed == before


def test_another_model_forgets_the_speed():
    pool = Pool()
    pool.ready()
    _chat(pool, 1, accepted=10.0, first=10.5, done=12.5)
    pool.die(SIGKILL, at=13.0)
    pool.restart(at=13.5)
    pool.ready(at=14.0)  # the same model, restarted: its speed still holds
    assert pool.state.workers[0].phase == "ready" and pool.state.speed is not None
    pool.die(SIGKILL, at=15.0)
    pool.restart(at=16.0)
    pool.apply(WorkerReady(0, pool.generation(), "fake", "another-model", 256, 17.0))
    assert pool.state.model_id == "another-model" and pool.state.speed is None


def _sent_to(effects):
    return [(e.worker, e.message["id"]) for e in effects if isinstance(e, SendToWorker) and e.message["op"] == "chat"]


def test_a_worker_that_decodes_two_sequences_takes_two_chats_and_the_third_waits():
    pool = Pool()
    pool.apply(WorkerReady(0, pool.generation(), "fake", "m", 256, 1.0, sequences=2))
    assert _sent_to(pool.submit(1, "a")) == [(0, 1)]
    assert _sent_to(pool.submit(2, "b")) == [(0, 2)]
    assert pool.submit(3, "c") == [] and pool.state.waiting == {"c": (3,)}
    assert pool.state.workers[0].job_ids == (1, 2)
    # One ends: its sequence takes the waiting chat.
    assert _sent_to(pool.stream(2, "done")) == [(0, 3)]
    assert pool.state.workers[0].job_ids == (1, 3)


def test_chats_spread_over_idle_workers_before_a_worker_takes_a_second():
    pool = Pool(workers=2)
    for worker in (0, 1):
        pool.apply(WorkerReady(worker, pool.generation(worker), "fake", "m", 256, 1.0, sequences=2))
    pool.submit(1, "a")
    pool.submit(2, "b")
    assert [w.job_ids for w in pool.state.workers] == [(1,), (2,)]
    pool.submit(3, "c")
    assert [w.job_ids for w in pool.state.workers] == [(1, 3), (2,)]


def test_queued_chats_fill_every_free_sequence_when_a_worker_comes_up():
    pool = Pool(limits=PoolLimits(chats_per_client=4))
    for job_id in (1, 2, 3):
        pool.submit(job_id, "a")
    sent = pool.apply(WorkerReady(0, pool.generation(), "fake", "m", 256, 1.0, sequences=2))
    assert _sent_to(sent) == [(0, 1), (0, 2)]
    assert pool.state.waiting == {"a": (3,)}


def test_a_worker_that_dies_ends_every_chat_it_decoded_and_none_other():
    pool = Pool(workers=2)
    for worker in (0, 1):
        pool.apply(WorkerReady(worker, pool.generation(worker), "fake", "m", 256, 1.0, sequences=2))
    for job_id, client in ((1, "a"), (2, "b"), (3, "c")):
        pool.submit(job_id, client)
    assert [w.job_ids for w in pool.state.workers] == [(1, 3), (2,)]
    pool.stream(1, "delta")
    effects = pool.die(SIGKILL)
    assert [e.job_id for e in effects if isinstance(e, FinishJob)] == [1, 3]
    assert all(isinstance(_finished(effects, job)[0], Exception) for job in (1, 3))
    assert 2 in pool.state.jobs and pool.state.workers[1].job_ids == (2,)
    # The restarted worker comes back with no chats.
    pool.restart()
    assert pool.state.workers[0].job_ids == ()


def test_a_crash_before_any_of_its_chats_streamed_points_at_the_build():
    pool = Pool()
    for round_ in range(BROKEN_AFTER_DEATHS):
        pool.apply(WorkerReady(0, pool.generation(), "fake", "m", 256, 1.0, sequences=2))
        pool.submit(10 * round_ + 1, "a")
        pool.submit(10 * round_ + 2, "b")
        pool.die(SIGSEGV)
        pool.restart()
    assert pool.state.broken is not None
