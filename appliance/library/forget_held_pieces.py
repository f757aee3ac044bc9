"""Stop counting pieces of a model as held (their bytes are gone, stale or bad)."""

from __future__ import annotations

from collections.abc import Iterable

from appliance.store.store_models import HeldPiece, database


def forget_held_pieces(model_id: str, node_id: str, pieces: Iterable[tuple[str, int]] | None = None) -> None:
    """Forget `pieces` ((path, index) pairs) of `model_id`, or every piece of it when `pieces` is None."""
    mine = (HeldPiece.model == model_id) & (HeldPiece.node_id == node_id)
    if pieces is None:
        HeldPiece.delete().where(mine).execute()
        return
    with database.atomic():
        for path, index in pieces:
            HeldPiece.delete().where(mine & (HeldPiece.path == path) & (HeldPiece.piece == index)).execute()
