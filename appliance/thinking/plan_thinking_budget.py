"""How much one thinking answer may spend: set by the unit from what its probe found, overridable."""

from __future__ import annotations

from appliance.engine.engine_types import Effort
from appliance.thinking.thinking_types import MAX_CALLS, MAX_SECONDS, MIN_CALLS, MIN_SECONDS, ThinkingBudget

# (analyses, candidates) per effort: agreement needs at least three analyses to mean anything.
_SHAPE = {"medium": (3, 2), "high": (5, 3)}
# Seconds a medium answer may take when its calls all run at once: a GPU (MLC) decodes several times faster
# than the CPU path; high effort may take twice as long.
_SECONDS = {"mlc": 60.0, "llama.cpp": 150.0}
# More candidates than this cost more than the choice gains; spare calls run failed ones again.
_MOST_CANDIDATES = 6


def plan_thinking_budget(
    effort: Effort,
    *,
    engine_kind: str,
    width: int,
    max_calls: int | None = None,
    max_seconds: float | None = None,
) -> ThinkingBudget | None:
    """The budget for `effort` on this unit (None for "low": answer directly). width: the chats that can
    run at once in reach (ready sequences here and on peers); calls that do not fit run in waves, so the
    time grows with them. max_calls / max_seconds: the person's override, held to the service's bounds."""
    if effort == "low":
        return None
    analyses, candidates = _SHAPE[effort]
    waves = max(1, -(-max(analyses, candidates) // max(1, width)))
    seconds = _SECONDS.get(engine_kind, _SECONDS["llama.cpp"]) * (2 if effort == "high" else 1) * min(waves, 3)
    # Room for a many-part prompt's parts (one call each) and for failed calls to run again.
    calls = analyses + max(candidates, _MOST_CANDIDATES)
    if max_calls is not None:
        calls = max(MIN_CALLS, min(MAX_CALLS, max_calls))
        # The calls go to candidates first (at least one answer), then to analyses, then to more candidates.
        analyses = min(analyses, max(0, calls - 1))
        spare = max(0, calls - analyses - candidates)
        candidates = max(1, min(candidates + spare, calls - analyses, _MOST_CANDIDATES))
    if max_seconds is not None:
        seconds = max(MIN_SECONDS, min(MAX_SECONDS, float(max_seconds)))
    return ThinkingBudget(analyses=analyses, candidates=candidates, max_calls=calls, max_seconds=seconds)
