"""The unit's random, stable identity (names its Wi-Fi and its mesh presence; says nothing about its owner)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from appliance.write_file_atomically import write_file_atomically

_FILE = "node_id"
# Exactly what secrets.token_hex(8) writes: int(text, 16) would also take "0x…", "-…" and "_" separators.
_NODE_ID = re.compile(r"[0-9a-f]{16}")


def load_node_id(data_dir: Path) -> str:
    """Read `<data_dir>/node_id`, creating it (16 random hex digits) on first start."""
    path = Path(data_dir) / _FILE
    try:
        node_id = path.read_text(encoding="ascii").strip()
        if _NODE_ID.fullmatch(node_id):
            return node_id
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    node_id = secrets.token_hex(8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, node_id + "\n")  # never leave a half-written identity
    return node_id
