"""Set the admin PIN."""

from __future__ import annotations

import re
import secrets

from appliance.admin.admin_types import PIN_SETTING
from appliance.admin.hash_admin_pin import hash_admin_pin
from appliance.store.write_setting import write_setting

# 8 digits: with sign-in slowed per address and locked unit-wide, guessing one is out of reach.
_PIN = re.compile(r"[0-9]{8,12}")


def set_admin_pin(pin: object) -> None:
    """Store `pin` (8 to 12 digits) hashed; ValueError for anything else."""
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        raise ValueError("the PIN must be 8 to 12 digits")
    salt = secrets.token_bytes(16)
    write_setting(PIN_SETTING, {"salt": salt.hex(), "hash": hash_admin_pin(pin, salt)})
