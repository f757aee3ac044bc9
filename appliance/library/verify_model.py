"""Re-read a model's files and check every piece against what this unit recorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from appliance.library.forget_held_pieces import forget_held_pieces
from appliance.library.library_errors import LibraryError
from appliance.library.list_held_pieces import list_held_pieces
from appliance.library.lock_model_install import lock_model_install
from appliance.library.parse_manifest import parse_manifest
from appliance.library.resolve_model_path import resolve_model_path
from appliance.store.store_models import LibraryModel, ModelFile, database, now_utc


def _expected_pieces(row: LibraryModel, node_id: str) -> dict[tuple[str, int], str]:
    if row.manifest:
        manifest = parse_manifest(json.loads(row.manifest))
        return {(f.path, i): sha for f in manifest.files for i, sha in enumerate(f.pieces)}
    # A partial first install has no manifest yet: check what it recorded when it wrote each piece.
    return list_held_pieces(row.id, node_id)


def verify_model(model_id: str, *, data_dir: str | Path, node_id: str) -> dict:
    """{"id", "state", "checked_pieces", "bad_pieces": [[path, index], ...]}. Bad pieces are forgotten, and
    an installed model with any becomes partial, so that the next install fetches just those again."""
    row = LibraryModel.get_or_none(LibraryModel.id == model_id)
    if row is None or row.state == "available":
        raise LibraryError(code="model_not_installed", message=f"{model_id} is not installed on this unit")
    models_dir = Path(data_dir) / "models"
    with lock_model_install(models_dir, model_id):
        expected = _expected_pieces(row, node_id)
        held = set(list_held_pieces(row.id, node_id))
        sizes = {f.path: f.size for f in ModelFile.select().where(ModelFile.model == row.id)}
        bad: list[tuple[str, int]] = []
        for path in sorted(sizes):
            try:
                handle = open(resolve_model_path(models_dir / model_id, path), "rb")
            except OSError:
                bad.extend((path, i) for (p, i) in sorted(held) if p == path)
                continue
            with handle:
                for p, index in sorted(k for k in held if k[0] == path):
                    handle.seek(index * row.piece_size)
                    data = handle.read(min(row.piece_size, sizes[path] - index * row.piece_size))
                    if hashlib.sha256(data).hexdigest() != expected.get((p, index)):
                        bad.append((path, index))
        with database.atomic():
            forget_held_pieces(row.id, node_id, bad)
            if bad and row.state == "installed":
                row.state, row.updated_at = "partial", now_utc()
                row.save()
    return {"id": model_id, "state": row.state, "checked_pieces": len(held), "bad_pieces": [list(b) for b in bad]}
