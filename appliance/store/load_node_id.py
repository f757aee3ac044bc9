"""The unit's random, stable identity (names its Wi-Fi and its mesh presence; says nothing about its owner)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

_FILE = "node_id"


def load_node_id(data_dir: Path) -> str:
    """Read `<data_dir>/node_id`, creating it (16 random hex digits) on first start."""
    path = Path(data_dir) / _FILE
    try:
        node_id = path.read_text(encoding="ascii").strip()
        int(node_id, 16)
        if len(node_id) == 16:
            return node_id
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        pass
    node_id = secrets.token_hex(8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n", encoding="ascii")
    os.replace(tmp, path)  # never leave a half-written identity
    return node_id
