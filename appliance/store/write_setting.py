"""Write one unit-wide setting."""

from __future__ import annotations

import json

from appliance.store.store_models import Setting, now_utc


def write_setting(key: str, value) -> None:
    """Store `value` (JSON-serialisable) under `key`, replacing what was there."""
    Setting.insert(key=key, value=json.dumps(value), updated_at=now_utc()).on_conflict_replace().execute()
