"""What this unit can tell the other units of its mesh about a model it holds (some or all of)."""

from __future__ import annotations

import json

from appliance.library.library_types import HeldModel
from appliance.library.list_held_pieces import list_held_pieces
from appliance.store.store_models import LibraryModel, ModelFile


def describe_held_model(model_id: str, node_id: str) -> HeldModel | None:
    """The model's verified manifest and the pieces held; None when this unit has no verified piece of it."""
    row = LibraryModel.get_or_none(LibraryModel.id == model_id)
    if row is None or not row.manifest or not row.root_hash or row.state == "available":
        return None
    files = {f.path: f.size for f in ModelFile.select().where(ModelFile.model == model_id)}
    return HeldModel(
        id=model_id,
        format=row.format,
        engine=row.engine,
        root_hash=row.root_hash,
        manifest=json.loads(row.manifest),
        piece_size=row.piece_size,
        file_sizes=files,
        held=frozenset(list_held_pieces(model_id, node_id)),
    )
