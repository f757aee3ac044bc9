"""Check that a certificate is a unit's of this mesh, and say which unit."""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from appliance.mesh.identity.identity_types import MeshAuthority
from appliance.mesh.mesh_errors import MeshError

_NODE_ID = re.compile(r"[0-9a-f]{16}")
MAX_CERTIFICATE_BYTES = 4096


def verify_unit_certificate(certificate_pem: bytes, authority: MeshAuthority) -> str:
    """The node id the certificate names, if this mesh's CA signed it for a unit (not a CA);
    MeshError "bad_identity" otherwise."""
    if len(certificate_pem) > MAX_CERTIFICATE_BYTES:
        raise MeshError("bad_identity", "the certificate is too large")
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(authority.certificate_pem))
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature) as exc:
        # InvalidSignature: the issuer's name is the mesh CA's (public), the signature is someone else's.
        raise MeshError("bad_identity", f"not a certificate of this mesh: {exc}") from exc
    names = [name.value for name in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if constraints.ca or len(names) != 1 or not isinstance(names[0], str) or not _NODE_ID.fullmatch(names[0]):
        raise MeshError("bad_identity", "the certificate does not name a unit")
    return names[0]
