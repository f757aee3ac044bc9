"""How long a chat sent to this unit now would wait for a worker: what a scheduler compares across units."""

from __future__ import annotations

from appliance.engine.pool.pool_types import PoolState


def estimate_start_delay(state: PoolState) -> float | None:
    """Seconds until a new chat would start (0: a worker is free now); None when no worker is ready.

    A busy worker frees in half a chat on average; each chat queued ahead takes a whole chat (`mean_chat_s`)
    of one of the ready workers.
    """
    ready = sum(worker.phase == "ready" for worker in state.workers)
    if ready == 0 or state.broken is not None or state.closed:
        return None
    busy = sum(worker.phase == "ready" and worker.job_id is not None for worker in state.workers)
    queued = sum(len(ids) for ids in state.waiting.values())
    if busy < ready and queued == 0:
        return 0.0
    return state.mean_chat_s * (0.5 + max(0, queued + busy - ready) / ready)
