"""The pieces of a model this unit holds, verified, with their SHA-256."""

from __future__ import annotations

from appliance.store.store_models import HeldPiece


def list_held_pieces(model_id: str, node_id: str) -> dict[tuple[str, int], str]:
    """{(path, piece index): sha256} of every piece of `model_id` that `node_id` has written and verified."""
    query = HeldPiece.select(HeldPiece.path, HeldPiece.piece, HeldPiece.sha256).where(
        (HeldPiece.model == model_id) & (HeldPiece.node_id == node_id)
    )
    return {(held.path, held.piece): held.sha256 for held in query}
