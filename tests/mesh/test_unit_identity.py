"""Unit identities: one CA per mesh key, a certificate per unit, signatures a peer can attribute."""

from __future__ import annotations

import datetime
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.mesh.identity.derive_mesh_authority import derive_mesh_authority
from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.identity.load_unit_identity import load_unit_identity
from appliance.mesh.identity.sign_unit_statement import sign_unit_statement
from appliance.mesh.identity.verify_unit_certificate import verify_unit_certificate
from appliance.mesh.identity.verify_unit_statement import verify_unit_statement
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.mesh_errors import MeshError

KEY = parse_mesh_key(create_mesh_key())
OTHER_KEY = parse_mesh_key(create_mesh_key())
NODE_A, NODE_B = "00000000000000aa", "00000000000000bb"


def test_every_unit_derives_the_same_authority_and_another_mesh_another():
    assert derive_mesh_authority(KEY) == derive_mesh_authority(KEY)
    assert derive_mesh_authority(KEY).certificate_pem != derive_mesh_authority(OTHER_KEY).certificate_pem


def test_a_unit_gets_a_certificate_for_its_node_id_its_key_private_and_kept(tmp_path):
    identity = ensure_unit_identity(tmp_path, NODE_A, KEY)
    assert verify_unit_certificate(identity.certificate_pem, derive_mesh_authority(KEY)) == NODE_A
    assert stat.S_IMODE(identity.key_path.stat().st_mode) == 0o600
    again = ensure_unit_identity(tmp_path, NODE_A, KEY)
    assert again.certificate_pem == identity.certificate_pem  # not re-issued without a reason
    # Python's own TLS stack (OpenSSL, as mosquitto's) accepts the files as a chain.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(identity.ca_path))
    context.load_cert_chain(identity.certificate_path, identity.key_path)


def test_a_new_mesh_key_reissues_the_certificate_and_keeps_the_units_key(tmp_path):
    first = ensure_unit_identity(tmp_path, NODE_A, KEY)
    second = ensure_unit_identity(tmp_path, NODE_A, OTHER_KEY)
    assert second.private_key_pem == first.private_key_pem
    assert verify_unit_certificate(second.certificate_pem, derive_mesh_authority(OTHER_KEY)) == NODE_A
    with pytest.raises(MeshError) as caught:
        verify_unit_certificate(first.certificate_pem, derive_mesh_authority(OTHER_KEY))
    assert caught.value.code == "bad_identity"


def test_statements_are_attributed_to_their_signer_and_nothing_else_passes(tmp_path):
    authority = derive_mesh_authority(KEY)
    a = ensure_unit_identity(tmp_path / "a", NODE_A, KEY)
    b = ensure_unit_identity(tmp_path / "b", NODE_B, KEY)
    outsider = ensure_unit_identity(tmp_path / "x", NODE_B, OTHER_KEY)
    signature = sign_unit_statement(a, b"manifest of Toy")
    assert verify_unit_statement(a.certificate_pem, b"manifest of Toy", signature, authority) == NODE_A
    refusals = [
        (a.certificate_pem, b"manifest of Toy!", signature),  # other bytes
        (b.certificate_pem, b"manifest of Toy", signature),  # claimed by another unit
        (outsider.certificate_pem, b"manifest of Toy", sign_unit_statement(outsider, b"manifest of Toy")),
        (authority.certificate_pem, b"manifest of Toy", signature),  # the CA is not a unit
        (b"not a certificate", b"manifest of Toy", signature),
        (b"x" * 100_000, b"manifest of Toy", signature),
    ]
    for certificate, statement, forged in refusals:
        with pytest.raises(MeshError) as caught:
            verify_unit_statement(certificate, statement, forged, authority)
        assert caught.value.code in ("bad_identity", "bad_signature")


def test_a_certificate_naming_the_mesh_ca_as_issuer_but_signed_by_another_key_is_refused():
    # The CA's name is public (every certificate carries it): a forger can write it, not sign with its key.

    authority = derive_mesh_authority(parse_mesh_key(create_mesh_key()))
    ca_name = x509.load_pem_x509_certificate(authority.certificate_pem).subject
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a" * 16)]))
        .issuer_name(ca_name)
        .public_key(forger.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2000, 1, 1))
        .not_valid_after(datetime.datetime(2100, 1, 1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(forger, hashes.SHA256())
    )
    with pytest.raises(MeshError) as info:
        verify_unit_certificate(forged.public_bytes(serialization.Encoding.PEM), authority)
    assert info.value.code == "bad_identity"


def test_the_units_identity_is_made_once_per_mesh_key_and_again_for_a_new_one(tmp_path):
    assert load_unit_identity(tmp_path, NODE_A) is None  # in no mesh
    store_mesh_key(tmp_path, create_mesh_key())
    first = load_unit_identity(tmp_path, NODE_A)
    assert first is not None and verify_unit_certificate(first[0].certificate_pem, first[1]) == NODE_A
    assert load_unit_identity(tmp_path, NODE_A) is first  # no disk check, no derivation on every request
    store_mesh_key(tmp_path, create_mesh_key())  # the unit joined another mesh
    second = load_unit_identity(tmp_path, NODE_A)
    assert second is not None and second[1] != first[1]
    assert verify_unit_certificate(second[0].certificate_pem, second[1]) == NODE_A
    assert second[0].private_key_pem == first[0].private_key_pem  # the unit's own key stays
