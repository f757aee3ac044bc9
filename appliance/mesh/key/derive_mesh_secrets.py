"""Derive everything a unit needs from the mesh key."""

from __future__ import annotations

from appliance.mesh.mesh_types import MeshKey, MeshSecrets
from appliance.mesh.messages.derive_hkdf_sha256 import derive_hkdf_sha256

# A fixed salt: the key is already uniformly random; the salt only separates iplm from other HKDF users.
_SALT = b"iplm mesh v1"
# One label per output, so that no derived value tells anything about another (the mesh id is public,
# the broker password crosses the mesh link in clear MQTT, the message key never leaves the unit).
_LABEL_MESH_ID = b"iplm1 mesh id"
_LABEL_USERNAME = b"iplm1 broker username"
_LABEL_PASSWORD = b"iplm1 broker password"
_LABEL_MESSAGE_KEY = b"iplm1 message mac key"


def derive_mesh_secrets(key: MeshKey) -> MeshSecrets:
    """The MeshSecrets of `key`: the same on every unit that has the key."""

    def derive(label: bytes, length: int) -> bytes:
        return derive_hkdf_sha256(key.secret, salt=_SALT, info=label, length=length)

    return MeshSecrets(
        mesh_id=derive(_LABEL_MESH_ID, 8).hex(),
        broker_username="iplm-" + derive(_LABEL_USERNAME, 8).hex(),
        # Hex: no ':' (the password file's separator), no leading '-' for command-line tools.
        broker_password=derive(_LABEL_PASSWORD, 32).hex(),
        message_key=derive(_LABEL_MESSAGE_KEY, 32),
    )
