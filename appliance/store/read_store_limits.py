"""What the chat store keeps now: its quotas, and the retention the owner set."""

from __future__ import annotations

from appliance.store.read_setting import read_setting
from appliance.store.store_types import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, RETENTION_SETTING, StoreLimits


def read_store_limits() -> StoreLimits:
    """StoreLimits with the owner's retention (admin page), or the default for a setting never made or unreadable."""
    days = read_setting(RETENTION_SETTING, DEFAULT_RETENTION_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        days = DEFAULT_RETENTION_DAYS
    return StoreLimits(retention_days=days)
