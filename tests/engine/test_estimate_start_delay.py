"""When a chat sent now would start: a free worker at once, else half a chat plus a chat per chat ahead."""

import dataclasses

from appliance.engine.pool.estimate_start_delay import estimate_start_delay
from appliance.engine.pool.pool_types import PoolState, WorkerSlot

MEAN = 20.0


def _pool(phases, busy=(), queued=0, sequences=1) -> PoolState:
    workers = tuple(
        WorkerSlot(
            index=i,
            phase=phase,
            sequences=sequences,
            job_ids=tuple(100 * i + n for n in range(busy.count(i))),
        )
        for i, phase in enumerate(phases)
    )
    return PoolState(workers=workers, mean_chat_s=MEAN, waiting={"c": tuple(range(queued))} if queued else {})


def test_a_free_worker_starts_a_chat_at_once():
    assert estimate_start_delay(_pool(["ready", "ready"], busy=(0,))) == 0.0


def test_busy_workers_free_in_half_a_chat_and_each_queued_chat_takes_a_whole_one():
    assert estimate_start_delay(_pool(["ready"], busy=(0,))) == 0.5 * MEAN
    assert estimate_start_delay(_pool(["ready"], busy=(0,), queued=2)) == 2.5 * MEAN
    # Two workers share the queue.
    assert estimate_start_delay(_pool(["ready", "ready"], busy=(0, 1), queued=2)) == 1.5 * MEAN
    # A free worker with chats already queued for it (their turn has come): they go first.
    assert estimate_start_delay(_pool(["ready", "ready"], busy=(0,), queued=1)) == 0.5 * MEAN


def test_no_ready_worker_no_estimate():
    assert estimate_start_delay(_pool(["starting", "restarting"])) is None
    assert estimate_start_delay(dataclasses.replace(_pool(["ready"]), broken="SIGILL")) is None
    assert estimate_start_delay(dataclasses.replace(_pool(["ready"]), closed=True)) is None


def test_a_worker_that_decodes_several_chats_is_free_until_every_sequence_is_taken():
    assert estimate_start_delay(_pool(["ready"], busy=(0,), sequences=2)) == 0.0
    assert estimate_start_delay(_pool(["ready"], busy=(0, 0), sequences=2)) == 0.5 * MEAN
    # Two chats queued over two sequences: a chat each, on top of the half chat.
    assert estimate_start_delay(_pool(["ready"], busy=(0, 0), queued=2, sequences=2)) == 1.5 * MEAN
