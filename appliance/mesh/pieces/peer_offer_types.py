"""Data shapes of peers' offers: what a unit answers when another asks for a model's manifest, and how it
proves which unit answered.

The answer's body is JSON (model, node, format, engine, root_hash, manifest, held). Two headers authenticate
it: the answering unit's certificate (of this mesh, CN = its node id) and its signature over
compose_answer_statement (mesh id, model id, the request's own X-Iplm-Peer value, SHA-256 of the body).
The request's signature is answered once (a replay is refused), so an answer fits one request only.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.library.library_types import Manifest

ANSWER_CERTIFICATE_HEADER = "X-Iplm-Unit-Certificate"  # base64 of the unit's certificate (PEM)
ANSWER_SIGNATURE_HEADER = "X-Iplm-Unit-Signature"  # base64 of its ECDSA P-256/SHA-256 signature (DER)
# A unit's certificate is under 4 KiB (verify_unit_certificate); its base64 with room to spare.
MAX_ANSWER_HEADER_CHARS = 8192


@dataclass(frozen=True)
class PeerOffer:
    """One unit's verified answer: the manifest it holds the model by and the pieces it holds."""

    node: str  # the node id its certificate names (the answer's signature is checked)
    url: str  # where it answered
    manifest: Manifest
    holds: frozenset[tuple[str, int]]
