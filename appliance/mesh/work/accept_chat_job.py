"""A peer's answer to a chat another unit wants to send it: take it, or decline with the reason."""

from __future__ import annotations

from appliance.mesh.agent.presence_types import UnitLoad

# The sender weighed a presence a few seconds old: a wait this much longer than it expected (or twice
# as long) means the queue grew since, and the sender is better off elsewhere or at home.
_SLACK_S = 2.0


def accept_chat_job(local: UnitLoad, model: str, expected_start_s: float) -> str | None:
    """None: run it. Otherwise why not, for the sender (which then runs the chat itself or elsewhere).

    local: this unit's load now; expected_start_s: the wait the sender counted on (its choose_chat_unit).
    A forwarded chat is never forwarded again: a unit that declines sends it back, not on.
    """
    if local.model != model:
        return "serves another model"
    if local.workers_ready == 0 or local.start_in_s is None:
        return "no ready worker"
    if local.start_in_s > max(expected_start_s + _SLACK_S, 2 * expected_start_s):
        return f"busier than announced (a {local.start_in_s:.1f} s wait)"
    return None
