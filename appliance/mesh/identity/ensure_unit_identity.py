"""This unit's mesh certificate and key, made once per mesh key and node id and kept in the data dir."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.mesh.identity.derive_mesh_authority import derive_mesh_authority
from appliance.mesh.identity.identity_types import (
    CA_FILE,
    CERTIFICATE_FILE,
    IDENTITY_DIR,
    KEY_FILE,
    VALID_FROM_YEAR,
    VALID_UNTIL_YEAR,
    MeshAuthority,
    UnitIdentity,
)
from appliance.mesh.mesh_types import MeshKey
from appliance.write_file_atomically import write_file_atomically


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_file_atomically(path, pem, mode=0o600)
    return key


def _is_current(path: Path, authority: x509.Certificate, node_id: str, key: ec.EllipticCurvePrivateKey) -> bool:
    """The certificate on disk is for this node id and key, signed by this mesh's CA."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        certificate.verify_directly_issued_by(authority)
    except (OSError, ValueError, TypeError):
        return False
    names = [name.value for name in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    public_key = certificate.public_key()
    same_key = (
        isinstance(public_key, ec.EllipticCurvePublicKey)
        and public_key.public_numbers() == key.public_key().public_numbers()
    )
    return names == [node_id] and same_key


def _issue(authority: MeshAuthority, node_id: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    ca_certificate = x509.load_pem_x509_certificate(authority.certificate_pem)
    ca_key = serialization.load_pem_private_key(authority.private_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(VALID_FROM_YEAR, 1, 2, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(VALID_UNTIL_YEAR, 12, 31, tzinfo=datetime.timezone.utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # A unit is a broker (server) for its peers and a client of theirs.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def ensure_unit_identity(data_dir: str | Path, node_id: str, key: MeshKey) -> UnitIdentity:
    """The unit's identity under <data_dir>/mesh/tls: its own random key (0600, kept across mesh keys),
    the mesh CA's certificate, and a certificate for CN=node_id, issued again when the mesh key changed."""
    directory = Path(data_dir) / IDENTITY_DIR
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    authority = derive_mesh_authority(key)
    ca_path, certificate_path, key_path = directory / CA_FILE, directory / CERTIFICATE_FILE, directory / KEY_FILE
    private_key = _load_or_create_key(key_path)
    if not ca_path.exists() or ca_path.read_bytes() != authority.certificate_pem:
        write_file_atomically(ca_path, authority.certificate_pem, mode=0o644)
    ca_certificate = x509.load_pem_x509_certificate(authority.certificate_pem)
    if not _is_current(certificate_path, ca_certificate, node_id, private_key):
        write_file_atomically(certificate_path, _issue(authority, node_id, private_key), mode=0o644)
    return UnitIdentity(
        node_id=node_id,
        ca_path=ca_path,
        certificate_path=certificate_path,
        key_path=key_path,
        certificate_pem=certificate_path.read_bytes(),
        private_key_pem=key_path.read_bytes(),
    )
