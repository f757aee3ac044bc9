"""How long a chat sent to this unit now would wait for a worker: what a scheduler compares across units."""

from __future__ import annotations

from appliance.engine.pool.pool_types import PoolState


def estimate_start_delay(state: PoolState) -> float | None:
    """Seconds until a new chat would start (0: a sequence is free now); None when no worker is ready.

    A worker runs `sequences` chats at once; a busy sequence frees in half a chat on average; each chat queued
    ahead takes a whole chat (`mean_chat_s`, measured as they share the worker) of one of the sequences.
    """
    if state.broken is not None or state.closed:
        return None
    ready = [worker for worker in state.workers if worker.phase == "ready"]
    slots = sum(worker.sequences for worker in ready)
    if slots == 0:
        return None
    busy = sum(len(worker.job_ids) for worker in ready)
    queued = sum(len(ids) for ids in state.waiting.values())
    if busy < slots and queued == 0:
        return 0.0
    return state.mean_chat_s * (0.5 + max(0, queued + busy - slots) / slots)
