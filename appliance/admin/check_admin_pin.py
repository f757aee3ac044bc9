"""Check a PIN an admin typed."""

from __future__ import annotations

import hmac

from appliance.admin.admin_types import PIN_SETTING
from appliance.admin.hash_admin_pin import hash_admin_pin
from appliance.store.read_setting import read_setting


def check_admin_pin(pin) -> bool:
    """True when `pin` is the unit's admin PIN (constant-time comparison)."""
    stored = read_setting(PIN_SETTING)
    if not isinstance(pin, str) or not isinstance(stored, dict) or len(pin) > 64:
        return False
    try:
        salt = bytes.fromhex(stored["salt"])
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(hash_admin_pin(pin, salt), str(stored.get("hash", "")))
