"""The bytes a unit signs when it answers a peer's request for a model's manifest."""

from __future__ import annotations

import hashlib

_LABEL = "iplm peer answer v1"


def compose_answer_statement(mesh_id: str, model_id: str, request_signature: str, body: bytes) -> bytes:
    """Binds the answer to this mesh, this model, the one request it answers (its X-Iplm-Peer value,
    which carries the asker, the time and the path) and every byte of the body."""
    fields = (_LABEL, mesh_id, model_id, request_signature, hashlib.sha256(body).hexdigest())
    return "\n".join(fields).encode("utf-8")
