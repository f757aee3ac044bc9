"""The per-device storage budget's transitions: one event in, the new budgets and the outcome out (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.portal.storage_budget_types import (
    BUDGET_WINDOW_S,
    MAX_DEVICES,
    BudgetEvent,
    BudgetOutcome,
    BudgetWindow,
    StorageAsked,
    StorageBudgets,
    StorageUsed,
)
from appliance.route_event import route_event

Step = tuple[StorageBudgets, BudgetOutcome]
_ALLOWED = BudgetOutcome(True)


def _window(state: StorageBudgets, device: str, at: float) -> BudgetWindow:
    window = state.windows.get(device)
    if window is None or at - window.started_at >= BUDGET_WINDOW_S:
        return BudgetWindow(started_at=at)
    return window


def _keep(state: StorageBudgets, device: str, window: BudgetWindow) -> StorageBudgets:
    windows = {**state.windows, device: window}
    if len(windows) > MAX_DEVICES:  # forget the device whose window started longest ago
        stalest = min(windows, key=lambda name: windows[name].started_at)
        windows.pop(stalest)
    return dataclasses.replace(state, windows=windows)


def _ask(state: StorageBudgets, event: StorageAsked) -> Step:
    window = _window(state, event.device, event.at)
    limits = state.limits
    if (
        window.bytes + event.bytes > limits.bytes_per_day
        or window.conversations + event.conversations > limits.conversations_per_day
    ):
        return state, BudgetOutcome(False, retry_after_s=window.started_at + BUDGET_WINDOW_S - event.at)
    spent = dataclasses.replace(
        window, bytes=window.bytes + event.bytes, conversations=window.conversations + event.conversations
    )
    return _keep(state, event.device, spent), _ALLOWED


def _use(state: StorageBudgets, event: StorageUsed) -> Step:
    window = _window(state, event.device, event.at)
    return _keep(state, event.device, dataclasses.replace(window, bytes=window.bytes + event.bytes)), _ALLOWED


_TRANSITIONS: dict[type, Callable[[StorageBudgets, Any], Step]] = {StorageAsked: _ask, StorageUsed: _use}


def apply_budget_event(state: StorageBudgets, event: BudgetEvent) -> Step:
    """The budgets after `event` and whether it is allowed (StorageUsed always is: it is already stored)."""
    return route_event(_TRANSITIONS, state, event, "storage budget")
