"""Where an installed model's files are, in the form its engine opens."""

from __future__ import annotations

from pathlib import Path

from appliance.engine.default_model import DEFAULT_MODEL_ID
from appliance.engine.locate_default_model import locate_default_model
from appliance.library.library_errors import LibraryError
from appliance.store.store_models import LibraryModel


def locate_installed_model(data_dir: str | Path, model_id: str) -> Path:
    """An MLC model's directory, or a GGUF model's file; the embedded default is always there.

    LibraryError "model_not_installed" for anything else that is not fully installed.
    """
    row = LibraryModel.get_or_none(LibraryModel.id == model_id)
    if row is None or row.state != "installed":
        if model_id == DEFAULT_MODEL_ID:
            return locate_default_model()
        raise LibraryError(code="model_not_installed", message=f"{model_id} is not installed on this unit")
    model_dir = Path(data_dir) / "models" / model_id
    if row.format == "mlc":
        return model_dir
    ggufs = sorted(model_dir.glob("*.gguf"))
    if len(ggufs) != 1:
        raise LibraryError(code="model_not_installed", message=f"{model_dir} does not hold exactly one .gguf file")
    return ggufs[0]
