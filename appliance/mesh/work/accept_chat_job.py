"""A peer's answer to a chat another unit wants to send it: take it, or decline with the reason."""

from __future__ import annotations

from appliance.mesh.agent.presence_types import UnitLoad
from appliance.mesh.work.estimate_unit_start import estimate_unit_start
from appliance.mesh.work.work_types import ChatCost

# The sender weighed a presence a few seconds old: a wait this much longer than it expected (or twice
# as long) means the queue grew since, and the sender is better off elsewhere or at home.
_SLACK_S = 2.0


def accept_chat_job(local: UnitLoad, cost: ChatCost, expected_start_s: float) -> str | None:
    """None: run it. Otherwise why not, for the sender (which then runs the chat itself or elsewhere).

    local: this unit's load now; cost: the chat (model, prompt and reply tokens, as the sender weighed it);
    expected_start_s: the wait the sender counted on, which this unit counts again the same way
    (estimate_unit_start, its own speeds). A forwarded chat is never forwarded again: a unit that declines
    sends it back, not on.
    """
    if local.model != cost.model:
        return "serves another model"
    speeds = (local.prefill_tokens_per_s, local.decode_tokens_per_s)
    chat_s = None if None in speeds else cost.prompt_tokens / speeds[0] + cost.reply_tokens / speeds[1]  # type: ignore[operator]
    start = estimate_unit_start(local, chat_s)
    if start is None:
        return "no ready worker"
    if start > max(expected_start_s + _SLACK_S, 2 * expected_start_s):
        return f"busier than announced (a {start:.1f} s wait)"
    return None
