"""Read one unit-wide setting."""

from __future__ import annotations

import json

from appliance.store.store_models import Setting


def read_setting(key: str, default=None):
    """The setting's value (any JSON value), or `default` when it was never set or is unreadable."""
    row = Setting.get_or_none(Setting.key == key)
    if row is None:
        return default
    try:
        return json.loads(row.value)
    except json.JSONDecodeError:
        return default
