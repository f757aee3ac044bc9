"""Check a statement signed by a unit of this mesh; say which unit signed it."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.mesh.identity.identity_types import MeshAuthority
from appliance.mesh.identity.verify_unit_certificate import verify_unit_certificate
from appliance.mesh.mesh_errors import MeshError


def verify_unit_statement(certificate_pem: bytes, statement: bytes, signature: bytes, authority: MeshAuthority) -> str:
    """The node id of the unit whose certificate (of this mesh) signed `statement`; MeshError
    "bad_identity" for a certificate that is not a unit's of this mesh, "bad_signature" for a signature
    that does not match."""
    node_id = verify_unit_certificate(certificate_pem, authority)
    public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise MeshError("bad_identity", "the certificate's key is not an EC key")
    try:
        public_key.verify(signature, statement, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise MeshError("bad_signature", f"the signature is not {node_id}'s") from None
    return node_id
