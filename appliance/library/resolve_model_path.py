"""The safe join of a model directory and a manifest path, used before every read or write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from appliance.library.check_relative_path import check_relative_path
from appliance.library.library_errors import ManifestError


def _refuse_symlinks(model_dir: Path, relative: str) -> None:
    current = model_dir
    for component in relative.split("/"):
        current = current / component
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return  # the rest does not exist yet: nothing below can be a link
        if stat.S_ISLNK(mode):
            raise ManifestError(f"{relative!r}: {current.relative_to(model_dir)} is a symbolic link")


def resolve_model_path(model_dir, relative: str) -> Path:
    """Return model_dir/relative after checking the name (check_relative_path), that no existing
    component of it is a symlink, and that it stays inside model_dir; ManifestError otherwise.
    """
    check_relative_path(relative)
    model_dir = Path(model_dir)
    _refuse_symlinks(model_dir, relative)
    path = model_dir / relative
    # Belt and braces: with no '..' and no links this always holds; a race or a bind mount may not.
    root = os.path.realpath(model_dir)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise ManifestError(f"{relative!r} resolves outside the model directory")
    return path
