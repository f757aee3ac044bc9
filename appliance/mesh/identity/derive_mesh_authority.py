"""The mesh's certificate authority, derived from the mesh key: every unit computes the same one."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.mesh.identity.identity_types import VALID_FROM_YEAR, VALID_UNTIL_YEAR, MeshAuthority
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.derive_hkdf_sha256 import derive_hkdf_sha256

_SALT = b"iplm mesh v1"
_LABEL_CA_KEY = b"iplm1 mesh ca key"
# The order of P-256's group: a derived scalar must lie in [1, n-1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derive_mesh_authority(key: MeshKey) -> MeshAuthority:
    """The CA key (P-256, from HKDF of the mesh key) and its self-signed certificate, byte for byte the same
    on every unit (deterministic ECDSA, fixed serial and dates)."""
    mesh_id = derive_mesh_secrets(key).mesh_id
    seed = int.from_bytes(derive_hkdf_sha256(key.secret, salt=_SALT, info=_LABEL_CA_KEY, length=48), "big")
    private_key = ec.derive_private_key(seed % (_P256_ORDER - 1) + 1, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"iplm mesh {mesh_id}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(int(mesh_id, 16) or 1)
        .not_valid_before(datetime.datetime(VALID_FROM_YEAR, 1, 2, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(VALID_UNTIL_YEAR, 12, 31, tzinfo=datetime.timezone.utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
        .sign(private_key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return MeshAuthority(
        mesh_id=mesh_id,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        private_key_pem=private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
