"""Read the unit's mesh key from its data dir."""

from __future__ import annotations

from pathlib import Path

from appliance.mesh.agent.mesh_agent_types import MESH_KEY_FILE
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.mesh_types import MeshKey


def load_mesh_key(data_dir) -> MeshKey | None:
    """The MeshKey in <data_dir>/mesh_key, or None when the unit is in no mesh; MeshKeyError if it is damaged."""
    try:
        text = (Path(data_dir) / MESH_KEY_FILE).read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    return parse_mesh_key(text.strip())
