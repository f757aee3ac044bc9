"""One writer per model at a time: installs, removals and repairs of a model exclude each other."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

from appliance.library.library_errors import InstallError


@contextlib.contextmanager
def lock_model_install(models_dir: Path, model_id: str):
    """Hold `<models_dir>/.<id>.lock`; InstallError "install_running" at once if another holder has it."""
    # flock, not a pid file: the kernel drops it when a killed installer dies, so a restart can resume.
    models_dir.mkdir(parents=True, exist_ok=True)
    handle = open(models_dir / f".{model_id}.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InstallError(
            code="install_running", message=f"{model_id} is already being installed or removed"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
