"""The unit's mesh secrets, derived from the key in its data dir."""

from __future__ import annotations

from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.mesh_types import MeshSecrets


def load_mesh_secrets(data_dir) -> MeshSecrets | None:
    """None when the unit is in no mesh (no key stored)."""
    key = load_mesh_key(data_dir)
    return derive_mesh_secrets(key) if key is not None else None
