"""How long a chat sent to a unit now would wait for a worker there: the one formula both sides use."""

from __future__ import annotations

from appliance.mesh.agent.presence_types import UnitLoad
from appliance.mesh.work.count_ready_slots import count_ready_slots


def estimate_unit_start(load: UnitLoad, chat_s: float | None, extra: int = 0) -> float | None:
    """Seconds until a new chat starts on a unit with `load`, `extra` more chats sent to it since its load was
    measured, each holding a worker for `chat_s` (None: not known). None: the unit has no ready worker.

    A busy sequence (a worker may decode several chats at once) frees in half a chat on average; each chat
    queued ahead takes a whole chat of one of the ready sequences. Sender and receiver both count this way
    from the same figures (counts and measured speeds), so the receiver's check of the sender's expectation
    compares like with like. Without a chat time, the unit's own figure (start_in_s) is all there is.
    """
    ready = count_ready_slots(load)
    if ready <= 0:
        return None
    ahead = load.busy + load.queued + max(0, extra)
    if ahead < ready:
        return 0.0
    if chat_s is None:
        return load.start_in_s
    return chat_s * (0.5 + (ahead - ready) / ready)
