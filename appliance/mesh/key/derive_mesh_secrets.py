"""Derive everything a unit needs from the mesh key."""

from __future__ import annotations

from appliance.mesh.mesh_types import MeshKey, MeshSecrets
from appliance.mesh.messages.derive_hkdf_sha256 import derive_hkdf_sha256

# A fixed salt: the key is already uniformly random; the salt only separates iplm from other HKDF users.
_SALT = b"iplm mesh v1"
# One label per output, so that no derived value tells anything about another (the mesh id is public,
# the message key never leaves the unit). The mesh's CA has its own label (derive_mesh_authority); the
# broker's former username and password labels are retired, not reused.
_LABEL_MESH_ID = b"iplm1 mesh id"
_LABEL_MESSAGE_KEY = b"iplm1 message mac key"


def derive_mesh_secrets(key: MeshKey) -> MeshSecrets:
    """The MeshSecrets of `key`: the same on every unit that has the key."""

    def derive(label: bytes, length: int) -> bytes:
        return derive_hkdf_sha256(key.secret, salt=_SALT, info=label, length=length)

    return MeshSecrets(
        mesh_id=derive(_LABEL_MESH_ID, 8).hex(),
        message_key=derive(_LABEL_MESSAGE_KEY, 32),
    )
