"""Delete the compiled libraries kept for a model (useless once the model is gone)."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.engine.mlc.library_target import JIT_DIR, LIBS_DIR


def forget_model_libraries(data_dir: str | Path, model_id: str) -> None:
    """Remove `model_id`'s kept libraries and its MLC JIT cache from the data dir (a symlink: unlinked, not
    followed)."""
    for folder in (Path(data_dir) / LIBS_DIR / model_id, Path(data_dir) / LIBS_DIR / JIT_DIR / model_id):
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)
