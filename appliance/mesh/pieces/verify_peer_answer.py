"""Check that a peer's answer to a manifest request was signed by a unit of this mesh, for that request."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from appliance.mesh.identity.identity_types import MeshAuthority
from appliance.mesh.identity.verify_unit_statement import verify_unit_statement
from appliance.mesh.mesh_errors import MeshError
from appliance.mesh.pieces.compose_answer_statement import compose_answer_statement
from appliance.mesh.pieces.peer_offer_types import (
    ANSWER_CERTIFICATE_HEADER,
    ANSWER_SIGNATURE_HEADER,
    MAX_ANSWER_HEADER_CHARS,
)


def _decode(headers: Mapping[str, str], name: str) -> bytes:
    value = headers.get(name) or ""
    if not value or len(value) > MAX_ANSWER_HEADER_CHARS:
        raise MeshError("unsigned_answer", f"the answer carries no usable {name}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MeshError("unsigned_answer", f"{name} is not base64") from exc


def verify_peer_answer(
    headers: Mapping[str, str],
    body: bytes,
    *,
    authority: MeshAuthority,
    mesh_id: str,
    model_id: str,
    request_signature: str,
) -> str:
    """The node id of the unit that signed this answer to this request; MeshError "unsigned_answer",
    "bad_identity" (no certificate of this mesh) or "bad_signature" (another body, model or request)."""
    certificate = _decode(headers, ANSWER_CERTIFICATE_HEADER)
    signature = _decode(headers, ANSWER_SIGNATURE_HEADER)
    statement = compose_answer_statement(mesh_id, model_id, request_signature, body)
    return verify_unit_statement(certificate, statement, signature, authority)
