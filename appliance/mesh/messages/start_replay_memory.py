"""Remember the signatures of peer requests already answered, so that a captured one is not answered twice."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from appliance.mesh.mesh_types import ReplayMemory

# A flood of valid requests cannot grow the memory past this; the oldest are forgotten first.
_LIMIT = 65536


def start_replay_memory(keep_for_s: float, *, clock: Callable[[], float] = time.monotonic) -> ReplayMemory:
    """An empty memory; remember(signature) is True the first time, False while it is remembered.

    Keep each signature as long as it would pass verification (its freshness window, both ways): after
    that, the signature is refused as stale anyway.
    """
    until: OrderedDict[str, float] = OrderedDict()  # in the order remembered, so also of expiry
    lock = threading.Lock()  # the server answers peers on several threads

    def remember(signature: str) -> bool:
        now = clock()
        with lock:
            while until and (next(iter(until.values())) <= now or len(until) >= _LIMIT):
                until.popitem(last=False)
            if signature in until:
                return False
            until[signature] = now + keep_for_s
            return True

    return ReplayMemory(remember=remember)
