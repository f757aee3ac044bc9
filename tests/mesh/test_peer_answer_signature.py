"""A manifest answer is attributed to the unit that signed it, for the one request it answers."""

from __future__ import annotations

import pytest

from appliance.mesh.identity.derive_mesh_authority import derive_mesh_authority
from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.mesh_errors import MeshError
from appliance.mesh.pieces.peer_offer_types import ANSWER_CERTIFICATE_HEADER, ANSWER_SIGNATURE_HEADER
from appliance.mesh.pieces.sign_peer_answer import sign_peer_answer
from appliance.mesh.pieces.verify_peer_answer import verify_peer_answer

KEY, OTHER_KEY = parse_mesh_key(create_mesh_key()), parse_mesh_key(create_mesh_key())
AUTHORITY = derive_mesh_authority(KEY)
NODE = "00000000000000a1"
ASKED = {"mesh_id": AUTHORITY.mesh_id, "model_id": "M", "request_signature": "00000000000000bb:1:ab"}


def _verify(headers, body=b"{}", **changes):
    return verify_peer_answer(headers, body, authority=AUTHORITY, **{**ASKED, **changes})


def test_a_signed_answer_names_its_unit(tmp_path):
    headers = sign_peer_answer(ensure_unit_identity(tmp_path, NODE, KEY), body=b"{}", **ASKED)
    assert _verify(headers) == NODE


@pytest.mark.parametrize(
    "change",
    [
        {"body": b'{"root": "other"}'},
        {"request_signature": "00000000000000bb:2:ab"},  # an answer replayed to another request
        {"model_id": "N"},
        {"mesh_id": "0" * 16},
    ],
)
def test_an_answer_moved_to_another_body_request_model_or_mesh_fails(tmp_path, change):
    headers = sign_peer_answer(ensure_unit_identity(tmp_path, NODE, KEY), body=b"{}", **ASKED)
    with pytest.raises(MeshError) as refused:
        _verify(headers, **change)
    assert refused.value.code == "bad_signature"


def test_unsigned_garbled_or_foreign_answers_fail(tmp_path):
    foreign = sign_peer_answer(ensure_unit_identity(tmp_path, NODE, OTHER_KEY), body=b"{}", **ASKED)
    with pytest.raises(MeshError) as refused:
        _verify(foreign)
    assert refused.value.code == "bad_identity"
    for headers in ({}, {**foreign, ANSWER_CERTIFICATE_HEADER: "not base64!"}, {ANSWER_SIGNATURE_HEADER: "AAAA"}):
        with pytest.raises(MeshError) as refused:
            _verify(headers)
        assert refused.value.code == "unsigned_answer"
