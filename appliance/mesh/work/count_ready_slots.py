"""How many chats a unit runs at once, by its load figures."""

from __future__ import annotations

from appliance.mesh.agent.presence_types import UnitLoad


def count_ready_slots(load: UnitLoad) -> int:
    """Its ready workers' sequences; a load that does not give them (an older unit) counts one per worker."""
    if load.workers_ready <= 0:
        return 0
    return max(load.slots_ready, load.workers_ready)
