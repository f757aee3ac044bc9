"""Where the unit keeps its data."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_data_dir(explicit: str | None = None) -> Path:
    """--data-dir, else $IPLM_DATA, else the XDG data dir (~/.local/share/iplm); /var/lib/iplm on the image."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("IPLM_DATA"):
        return Path(os.environ["IPLM_DATA"]).expanduser().resolve()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative path there is invalid and ignored (else the data would follow the cwd).
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "iplm"
