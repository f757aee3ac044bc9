"""This unit's mesh identity for whoever needs it (broker, agent, piece service), made on first use."""

from __future__ import annotations

import threading
from pathlib import Path

from appliance.mesh.identity.derive_mesh_authority import derive_mesh_authority
from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.identity.identity_types import MeshAuthority, UnitIdentity
from appliance.mesh.key.load_mesh_key import load_mesh_key

# The portal's threads and the mesh's start may ask at once; one of them makes the key and certificate.
_LOCK = threading.Lock()
# Every manifest a peer asks for is signed: the identity is checked on disk and the CA derived once per mesh
# key, not on every request.
_KNOWN: dict[tuple[str, str, bytes], tuple[UnitIdentity, MeshAuthority]] = {}


def load_unit_identity(data_dir: str | Path, node_id: str) -> tuple[UnitIdentity, MeshAuthority] | None:
    """The unit's identity and its mesh's CA for the mesh key now in `data_dir`; None when the unit is in no
    mesh. A changed mesh key gets a new certificate (the unit's own key stays)."""
    key = load_mesh_key(data_dir)
    if key is None:
        return None
    cache_key = (str(Path(data_dir).resolve()), node_id, key.secret)
    with _LOCK:
        known = _KNOWN.get(cache_key)
        if known is None or not known[0].certificate_path.exists():
            known = ensure_unit_identity(data_dir, node_id, key), derive_mesh_authority(key)
            _KNOWN[cache_key] = known
        return known
