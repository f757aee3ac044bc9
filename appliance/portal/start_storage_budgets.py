"""The per-device storage budgets of this run of the portal, in memory (a restart forgets them)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from appliance.portal.apply_budget_event import apply_budget_event
from appliance.portal.storage_budget_types import (
    BudgetEvent,
    BudgetLimits,
    BudgetOutcome,
    StorageBudgetKeeper,
    StorageBudgets,
)


@dataclass(eq=False)
class _Edge:
    state: StorageBudgets
    lock: threading.Lock = field(default_factory=threading.Lock)


def _apply(edge: _Edge, event: BudgetEvent) -> BudgetOutcome:
    with edge.lock:
        edge.state, outcome = apply_budget_event(edge.state, event)
    return outcome


def start_storage_budgets(limits: BudgetLimits | None = None) -> StorageBudgetKeeper:
    """A keeper with every device's budget untouched."""
    edge = _Edge(state=StorageBudgets(limits=limits or BudgetLimits()))
    return StorageBudgetKeeper(apply=lambda event: _apply(edge, event))
