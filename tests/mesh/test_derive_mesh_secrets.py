import pytest

from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.derive_hkdf_sha256 import derive_hkdf_sha256

KEY = MeshKey(secret=bytes(range(32)))


def test_hkdf_matches_rfc_5869_test_cases_1_and_3():
    ikm = bytes([0x0B]) * 22
    assert derive_hkdf_sha256(ikm, salt=bytes(range(13)), info=bytes(range(0xF0, 0xFA)), length=42).hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    assert derive_hkdf_sha256(ikm, salt=b"", info=b"", length=42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )
    with pytest.raises(ValueError):
        derive_hkdf_sha256(ikm, salt=b"", info=b"", length=0)


def test_derivation_is_pinned():
    # Every unit of a mesh must derive exactly these; a change here splits meshes across versions.
    secrets = derive_mesh_secrets(KEY)
    assert secrets.mesh_id == "5654c8c4a0a12d5b"
    assert secrets.message_key.hex() == "fcfd20ce591622fd8eab72e95e05cdcdac42ca69a6b457d7e90e0c9aee07aee1"


def test_derivation_is_deterministic_and_per_key():
    assert derive_mesh_secrets(KEY) == derive_mesh_secrets(MeshKey(secret=bytes(range(32))))
    other = derive_mesh_secrets(MeshKey(secret=bytes(range(1, 33))))
    mine = derive_mesh_secrets(KEY)
    assert other.mesh_id != mine.mesh_id and other.message_key != mine.message_key


def test_each_output_has_its_own_label():
    secrets = derive_mesh_secrets(KEY)
    raw = [
        bytes.fromhex(secrets.mesh_id),
        secrets.message_key,
    ]
    assert len({value[:8] for value in raw}) == 2  # no output is a prefix of another


def test_secrets_are_shaped_for_topics_and_never_shown():
    secrets = derive_mesh_secrets(KEY)
    assert len(secrets.mesh_id) == 16 and int(secrets.mesh_id, 16) >= 0
    assert secrets.message_key.hex() not in repr(secrets)
