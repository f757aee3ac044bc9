"""Keep the mesh key in the unit's data dir (a file of its own, mode 0600; never in the database)."""

from __future__ import annotations

from pathlib import Path

from appliance.mesh.agent.mesh_agent_types import MESH_KEY_FILE
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.write_file_atomically import write_file_atomically


def store_mesh_key(data_dir, key_text: str) -> Path:
    """Check `key_text` (MeshKeyError if it is not a key) and write it atomically to <data_dir>/mesh_key, 0600."""
    # The database goes into backups and support bundles; the key is the whole mesh's secret.
    parse_mesh_key(key_text)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / MESH_KEY_FILE
    write_file_atomically(path, key_text.strip() + "\n", mode=0o600)
    return path
