"""Which admin PIN is stored now: sessions opened with another one are over."""

from __future__ import annotations

from appliance.admin.admin_types import PIN_SETTING
from appliance.store.read_setting import read_setting


def read_pin_version() -> str:
    """A value that changes whenever the PIN is set (its random salt); "" when there is no PIN."""
    stored = read_setting(PIN_SETTING)
    return str(stored.get("salt", "")) if isinstance(stored, dict) else ""
