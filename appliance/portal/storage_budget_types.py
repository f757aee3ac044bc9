"""Data shapes of the per-device storage budget: what each address may have the unit store per day.

Quotas per phone key on its cookie, which a phone can rotate at will; this budget keys on the address
(name_chat_client), in memory only, so a phone that rotates cookies still stores no more than its share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.store.store_types import MIB

BUDGET_WINDOW_S = 24 * 3600.0
MAX_DEVICES = 4096  # remembered at once; the stalest window goes first (a /24 of phones is 254)


@dataclass(frozen=True)
class BudgetLimits:
    bytes_per_day: int = 16 * MIB  # about 150 exchanges of the longest messages the chat accepts
    conversations_per_day: int = 300


@dataclass(frozen=True)
class BudgetWindow:
    started_at: float
    bytes: int = 0
    conversations: int = 0


@dataclass(frozen=True)
class StorageBudgets:
    limits: BudgetLimits = BudgetLimits()
    windows: dict[str, BudgetWindow] = field(default_factory=dict)  # a value: transitions copy it


@dataclass(frozen=True)
class StorageAsked:
    """A device asks the unit to store `bytes` (a question) or a new conversation: refused when over."""

    device: str
    at: float
    bytes: int = 0
    conversations: int = 0


@dataclass(frozen=True)
class StorageUsed:
    """What was stored without asking (the reply, once it is done): counted, never refused."""

    device: str
    at: float
    bytes: int


BudgetEvent = StorageAsked | StorageUsed


@dataclass(frozen=True)
class BudgetOutcome:
    allowed: bool
    retry_after_s: float = 0.0


@dataclass(frozen=True)
class StorageBudgetKeeper:
    """The edge's handle: each event goes through apply_budget_event under one lock."""

    apply: Callable[[BudgetEvent], BudgetOutcome]
