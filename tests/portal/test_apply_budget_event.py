"""The per-device storage budget's transitions: no threads, no clocks."""

import dataclasses

import pytest

from appliance.portal.apply_budget_event import apply_budget_event
from appliance.portal.storage_budget_types import (
    BUDGET_WINDOW_S,
    MAX_DEVICES,
    BudgetLimits,
    StorageAsked,
    StorageBudgets,
    StorageUsed,
)

LIMITS = BudgetLimits(bytes_per_day=1000, conversations_per_day=2)


def _run(state, *events):
    outcomes = []
    for event in events:
        state, outcome = apply_budget_event(state, event)
        outcomes.append(outcome)
    return state, outcomes


def test_a_device_gets_its_bytes_and_conversations_then_is_refused_until_the_window_ends():
    state, outcomes = _run(
        StorageBudgets(limits=LIMITS),
        StorageAsked("ip:a", 0.0, conversations=1),
        StorageAsked("ip:a", 1.0, bytes=600),
        StorageUsed("ip:a", 2.0, bytes=300),  # its reply: counted, not refused
        StorageAsked("ip:a", 3.0, bytes=200),  # 600 + 300 + 200 > 1000
        StorageAsked("ip:a", 4.0, conversations=1),
        StorageAsked("ip:a", 5.0, conversations=1),
        StorageAsked("ip:b", 5.0, bytes=900),  # another device has its own budget
    )
    assert [outcome.allowed for outcome in outcomes] == [True, True, True, False, True, False, True]
    assert outcomes[3].retry_after_s == pytest.approx(BUDGET_WINDOW_S - 3.0)
    state, (fresh,) = _run(state, StorageAsked("ip:a", BUDGET_WINDOW_S + 1, bytes=1000))
    assert fresh.allowed and state.windows["ip:a"].bytes == 1000


def test_transitions_do_not_change_the_state_they_are_given():
    before = StorageBudgets(limits=LIMITS)
    after, _ = apply_budget_event(before, StorageAsked("ip:a", 0.0, bytes=10))
    assert before.windows == {} and after.windows["ip:a"].bytes == 10


def test_the_table_is_bounded_and_forgets_the_stalest_device():
    state = StorageBudgets(limits=LIMITS)
    for n in range(MAX_DEVICES + 5):
        state, _ = apply_budget_event(state, StorageAsked(f"ip:{n}", float(n), bytes=1))
    assert (
        len(state.windows) == MAX_DEVICES and "ip:0" not in state.windows and f"ip:{MAX_DEVICES + 4}" in state.windows
    )


def test_an_unknown_event_is_a_type_error():
    with pytest.raises(TypeError):
        apply_budget_event(StorageBudgets(), dataclasses.make_dataclass("Other", [])())
