"""Sign bytes with this unit's key, so that a peer can tell which unit said them."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.mesh.identity.identity_types import UnitIdentity


def sign_unit_statement(identity: UnitIdentity, statement: bytes) -> bytes:
    """An ECDSA P-256/SHA-256 signature (DER) of `statement` by the unit's key."""
    key = serialization.load_pem_private_key(identity.private_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(statement, ec.ECDSA(hashes.SHA256()))
