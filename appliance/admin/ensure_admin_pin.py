"""The unit's admin PIN exists from its first start."""

from __future__ import annotations

import secrets

from appliance.admin.admin_session_types import LOCK_SETTING
from appliance.admin.admin_types import PIN_SETTING
from appliance.admin.set_admin_pin import set_admin_pin
from appliance.store.read_setting import read_setting
from appliance.store.write_setting import write_setting


def ensure_admin_pin(reset: bool = False) -> str | None:
    """Create a random 8-digit PIN when there is none (or when `reset`: the sign-in lock goes too); return
    it, to be shown once."""
    if read_setting(PIN_SETTING) is not None and not reset:
        return None
    pin = f"{secrets.randbelow(10**8):08d}"
    set_admin_pin(pin)
    write_setting(LOCK_SETTING, False)
    return pin
