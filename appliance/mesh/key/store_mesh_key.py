"""Keep the mesh key in the unit's data dir (a file of its own, mode 0600; never in the database)."""
from __future__ import annotations

import os
from pathlib import Path

from appliance.mesh.agent.mesh_agent_types import MESH_KEY_FILE
from appliance.mesh.key.parse_mesh_key import parse_mesh_key


def store_mesh_key(data_dir, key_text: str) -> Path:
    """Check `key_text` (MeshKeyError if it is not a key) and write it atomically to <data_dir>/mesh_key, 0600."""
    # The database goes into backups and support bundles; the key is the whole mesh's secret.
    parse_mesh_key(key_text)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / MESH_KEY_FILE
    tmp = path.with_name(f".{MESH_KEY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, even briefly
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key_text.strip() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
