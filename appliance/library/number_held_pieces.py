"""Number the pieces of a model across its files, and say which of them this unit holds."""

from __future__ import annotations

from appliance.library.list_held_pieces import list_held_pieces
from appliance.store.store_models import LibraryModel, ModelFile


def number_held_pieces(model_id: str, node_id: str) -> tuple[tuple[int, ...], int]:
    """(numbers of the held pieces, number of pieces in all): the files in path order (the manifest's),
    each cut into ceil(size / piece size) pieces, numbered on from one file to the next."""
    row = LibraryModel.get_or_none(LibraryModel.id == model_id)
    if row is None or not row.piece_size:
        return (), 0
    offsets, total = {}, 0
    for model_file in sorted(ModelFile.select().where(ModelFile.model == model_id), key=lambda f: f.path):
        offsets[model_file.path] = total
        total += -(-model_file.size // row.piece_size)  # an empty file has no pieces (build_manifest)
    held = sorted(offsets[path] + index for path, index in list_held_pieces(model_id, node_id) if path in offsets)
    return tuple(held), total
