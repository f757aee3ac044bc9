"""Remove an installed or partial model: its files and its records."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.engine.mlc.forget_model_libraries import forget_model_libraries
from appliance.library.forget_held_pieces import forget_held_pieces
from appliance.library.library_errors import LibraryError
from appliance.library.lock_model_install import lock_model_install
from appliance.store.store_models import LibraryModel, ModelFile, database


def remove_model(model_id: str, *, data_dir: str | Path, node_id: str) -> None:
    """Delete `<data_dir>/models/<id>` and forget its pieces; its pinned root hash and manifest stay."""
    row = LibraryModel.get_or_none(LibraryModel.id == model_id)
    if row is None or row.state == "available":
        raise LibraryError(code="model_not_installed", message=f"{model_id} is not installed on this unit")
    models_dir = Path(data_dir) / "models"
    with lock_model_install(models_dir, model_id):
        with database.atomic():
            forget_held_pieces(model_id, node_id)
            ModelFile.delete().where(ModelFile.model == model_id).execute()
            if row.root_hash:
                # The pin (and its manifest) outlives the files: a reinstall is verified piece by piece.
                LibraryModel.update(state="available", installed_at=None).where(LibraryModel.id == model_id).execute()
            else:
                row.delete_instance()
        folder = models_dir / model_id
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)
        forget_model_libraries(data_dir, model_id)  # compiled for it: useless without it
