import threading
import time

import pytest

from appliance.engine.engine_types import ChatParams, ChatRequest, EngineError
from appliance.engine.pool.pool_types import BROKEN_AFTER_DEATHS, PoolLimits
from appliance.engine.pool.start_engine_pool import start_engine_pool
from tests.engine.list_live_workers import list_live_workers

SCRIPTED = "tests.engine.fake_engines:open_scripted_engine"


def _ask(engine, prompt, client="c", max_tokens=None, cancel=None):
    request = ChatRequest(
        messages=({"role": "user", "content": prompt},), params=ChatParams(max_tokens=max_tokens), client_key=client
    )
    return list(engine.stream_chat(request, cancel or threading.Event()))


def _text(events):
    return "".join(e.text for e in events if e.kind == "delta")


@pytest.fixture
def pool():
    engines = []

    def start(**kwargs):
        spec_kwargs = kwargs.pop("engine", {})
        engine = start_engine_pool({"factory": SCRIPTED, "kwargs": spec_kwargs}, ready_timeout=60, **kwargs)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.close()


def test_streams_start_deltas_done(pool):
    engine = pool()
    events = _ask(engine, "hi", max_tokens=3)
    assert [e.kind for e in events] == ["start", "delta", "delta", "delta", "done"]
    assert _text(events) == "hi:0 hi:1 hi:2 "
    assert events[-1].finish_reason == "length" and events[-1].completion_tokens == 3
    assert (engine.kind, engine.model_id, engine.n_ctx) == ("fake", "fake", 256)


def test_engine_refusal_reaches_caller_and_worker_stays(pool):
    engine = pool()
    with pytest.raises(EngineError) as refused:
        _ask(engine, "refuse")
    assert refused.value.code == "context_length_exceeded" and refused.value.status == 400
    with pytest.raises(EngineError) as bug:
        _ask(engine, "boom")
    assert bug.value.code == "engine_failed"
    assert _text(_ask(engine, "ok", max_tokens=1)) == "ok:0 "


def test_crash_fails_only_that_request_and_restarts(pool):
    engine = pool()
    with pytest.raises(EngineError) as crashed:
        _ask(engine, "crash")
    assert crashed.value.code == "engine_failed" and crashed.value.status == 502
    assert "exit code 77" in crashed.value.message
    # The next request waits for the restarted worker and succeeds.
    assert _text(_ask(engine, "after", max_tokens=2)) == "after:0 after:1 "
    assert engine.describe_status()["workers_ready"] == 1


def test_hang_is_killed_after_timeout_and_restarts(pool):
    engine = pool(hang_timeout=1.0)
    with pytest.raises(EngineError) as hung:
        _ask(engine, "hang")
    assert hung.value.code == "engine_timeout" and hung.value.status == 504
    assert _text(_ask(engine, "after", max_tokens=1)) == "after:0 "


def test_load_failure_is_a_clear_error_at_start(pool):
    with pytest.raises(EngineError) as failed:
        pool(engine={"fail_load": True})
    assert failed.value.code == "model_not_found"
    assert "fake model file is missing" in failed.value.message


def test_crash_on_load_is_reported_at_start():
    with pytest.raises(EngineError) as failed:
        start_engine_pool({"factory": "tests.engine.fake_engines:open_crash_on_load_engine"}, ready_timeout=5)
    assert failed.value.code == "engine_unavailable"


def test_queue_is_round_robin_between_clients(pool):
    engine = pool(engine={"delay": 0.05}, limits=PoolLimits(chats_per_client=3))
    order, lock = [], threading.Lock()

    def run(client, prompt, max_tokens=1):
        _ask(engine, prompt, client=client, max_tokens=max_tokens)
        with lock:
            order.append(prompt)

    def wait_for(condition) -> None:
        # Each step waits for the pool to show the previous one: no timing assumption on a busy machine.
        deadline = time.monotonic() + 30
        while not condition(engine.describe_status()) and time.monotonic() < deadline:
            time.sleep(0.01)

    blocker = threading.Thread(target=run, args=("x", "first", 60))
    blocker.start()
    wait_for(lambda status: status["busy"] == 1)  # "first" now runs; the rest queue behind it
    threads = []
    for queued, (prompt, client) in enumerate([("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")], 1):
        thread = threading.Thread(target=run, args=(client, prompt))
        thread.start()
        threads.append(thread)
        wait_for(lambda status, queued=queued: status["queued"] == queued)
    for thread in [blocker] + threads:
        thread.join(30)
    # Phone "a" sent three at once, yet "b" and "c" are served before a's second request.
    assert order == ["first", "a1", "b1", "c1", "a2", "a3"]


def test_cancel_while_queued_never_runs(pool):
    engine = pool(engine={"delay": 0.05})
    running = threading.Thread(target=_ask, args=(engine, "long"), kwargs={"max_tokens": 20})
    running.start()
    deadline = time.monotonic() + 30
    while engine.describe_status()["busy"] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # the only worker is taken: the next request can only queue
    cancel = threading.Event()
    cancel.set()
    events = _ask(engine, "queued", cancel=cancel)
    assert [e.kind for e in events] == ["done"] and events[0].finish_reason == "cancelled"
    running.join(30)


def test_cancel_while_running_stops_generation(pool):
    engine = pool(engine={"delay": 0.05})
    cancel = threading.Event()
    request = ChatRequest(messages=({"role": "user", "content": "go"},), params=ChatParams(max_tokens=1000))
    events = []
    for event in engine.stream_chat(request, cancel):
        events.append(event)
        if len(events) == 3:
            cancel.set()
    assert events[-1].kind == "done" and events[-1].finish_reason == "cancelled"
    assert len(events) < 20
    assert engine.describe_status()["busy"] == 0


def test_closing_the_stream_frees_the_worker(pool):
    engine = pool(engine={"delay": 0.05})
    request = ChatRequest(messages=({"role": "user", "content": "go"},), params=ChatParams(max_tokens=1000))
    stream = engine.stream_chat(request, threading.Event())
    next(stream), next(stream)
    stream.close()  # what a disconnected HTTP client does
    deadline = time.monotonic() + 10
    while engine.describe_status()["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.describe_status()["busy"] == 0
    assert _text(_ask(engine, "next", max_tokens=1)) == "next:0 "


def test_two_workers_run_two_streams_at_once(pool):
    engine = pool(workers=2, engine={"delay": 0.05})
    deadline = time.monotonic() + 30
    while engine.describe_status()["workers_ready"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the pool is usable once one worker is up; this test needs both
    seen_busy = []

    def watch():
        while any(thread.is_alive() for thread in threads):
            seen_busy.append(engine.describe_status()["busy"])
            time.sleep(0.02)

    threads = [
        threading.Thread(target=_ask, args=(engine, p), kwargs={"client": p, "max_tokens": 10}) for p in ("one", "two")
    ]
    watcher = threading.Thread(target=watch)
    for thread in threads + [watcher]:
        thread.start()
    for thread in threads + [watcher]:
        thread.join(30)
    assert max(seen_busy) == 2


def test_closed_pool_refuses(pool):
    engine = pool()
    engine.close()
    with pytest.raises(EngineError) as refused:
        _ask(engine, "late")
    assert refused.value.code == "engine_unavailable"


def test_a_build_that_dies_by_sigill_is_reported_not_restarted_forever():
    engine = start_engine_pool(
        {"factory": "tests.engine.fake_engines:open_illegal_instruction_engine"}, ready_timeout=60
    )
    try:
        errors = []
        for _ in range(BROKEN_AFTER_DEATHS):
            with pytest.raises(EngineError) as failed:
                _ask(engine, "hello")
            errors.append(failed.value)
        assert [e.code for e in errors] == ["engine_failed"] * (BROKEN_AFTER_DEATHS - 1) + ["engine_broken"]
        assert "SIGILL" in errors[0].message
        status = engine.describe_status()
        assert status["state"] == "failed" and status["workers_ready"] == 0
        assert "illegal instruction" in status["failure"]
        # From now on a chat is refused with the reason, and no worker is started again.
        with pytest.raises(EngineError) as refused:
            _ask(engine, "again")
        assert refused.value.code == "engine_broken" and refused.value.status == 503
        assert "cannot run on this unit" in refused.value.message
        assert list_live_workers() == []
    finally:
        engine.close()


def test_the_pool_tells_its_speed_and_when_a_new_chat_would_start(pool):
    engine = pool()
    before = engine.describe_status()
    assert (before["model"], before["start_in_s"], before["decode_tokens_per_s"]) == ("fake", 0.0, None)
    _ask(engine, "hi", max_tokens=5)
    status = engine.describe_status()
    assert status["prefill_tokens_per_s"] > 0 and status["decode_tokens_per_s"] > 0
    assert 0 <= status["speed_age_s"] < 60 and status["start_in_s"] == 0.0
