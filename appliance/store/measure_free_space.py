"""Free space on the disk that holds the unit's database (and its models)."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.store.store_models import database


def measure_free_space() -> int:
    """Bytes free for an unprivileged writer on the database's file system."""
    return shutil.disk_usage(Path(database.database).parent).free
