"""Sign this unit's answer to a peer's manifest request, so the asker knows which unit said it."""

from __future__ import annotations

import base64

from appliance.mesh.identity.identity_types import UnitIdentity
from appliance.mesh.identity.sign_unit_statement import sign_unit_statement
from appliance.mesh.pieces.compose_answer_statement import compose_answer_statement
from appliance.mesh.pieces.peer_offer_types import ANSWER_CERTIFICATE_HEADER, ANSWER_SIGNATURE_HEADER


def sign_peer_answer(
    identity: UnitIdentity, *, mesh_id: str, model_id: str, request_signature: str, body: bytes
) -> dict[str, str]:
    """The response headers that carry this unit's certificate and its signature over the answer."""
    statement = compose_answer_statement(mesh_id, model_id, request_signature, body)
    return {
        ANSWER_CERTIFICATE_HEADER: base64.b64encode(identity.certificate_pem).decode("ascii"),
        ANSWER_SIGNATURE_HEADER: base64.b64encode(sign_unit_statement(identity, statement)).decode("ascii"),
    }
