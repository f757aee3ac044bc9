"""Keep a compiled MLC model library (an admin's prebuilt one, or one MLC just JIT-compiled) for its target."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import asdict
from pathlib import Path

from appliance.engine.engine_types import EngineError
from appliance.engine.mlc.library_target import LIBRARY_SOURCES, LIBS_DIR, RECORD_VERSION, TARGET_FILE, LibraryTarget
from appliance.hash_file import hash_file
from appliance.write_file_atomically import write_file_atomically

# The model id rule of add_model: one safe path component.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ELF_MAGIC = b"\x7fELF"
_CHUNK = 1 << 20


@contextlib.contextmanager
def _lock(folder: Path):
    # One keeper per model at a time, so that one's clean-up never removes the other's new library.
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_library(library_path):
    try:
        handle = open(library_path, "rb")
    except OSError as exc:
        raise EngineError(code="library_invalid", message=f"cannot read {library_path}: {exc}") from exc
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode) or handle.read(len(_ELF_MAGIC)) != _ELF_MAGIC:
        handle.close()
        # MLC writes ELF shared objects on Linux; anything else would only fail in dlopen later.
        raise EngineError(code="library_invalid", message=f"{library_path} is not an ELF shared library")
    handle.seek(0)
    return handle


def _remove_leftovers(folder: Path, keep: str | None) -> None:
    # Under the lock, a temporary file is a crashed keeper's, and a .so the record does not name is stale.
    for entry in os.scandir(folder):
        stale_temporary = entry.name.startswith(".") and entry.name.endswith(".tmp")
        unreferenced = (
            keep is not None and entry.name.endswith(".so") and entry.name != keep and not entry.name.startswith(".")
        )
        if (stale_temporary or unreferenced) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@contextlib.contextmanager
def _temporary_file(folder: Path, suffix: str):
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=suffix)
    try:
        with open(fd, "wb") as handle:
            yield handle, temporary
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _copy_library(source, folder: Path, model_id: str) -> tuple[Path, str, int]:
    digest, size = hashlib.sha256(), 0
    with _temporary_file(folder, ".so.tmp") as (handle, temporary):
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            handle.write(chunk)
            size += len(chunk)
        handle.flush()
        os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        # The content in the name: a new library never overwrites one an engine may have loaded.
        kept = folder / f"{model_id}-{digest.hexdigest()[:16]}.so"
        os.replace(temporary, kept)
    return kept, digest.hexdigest(), size


def _write_record(folder: Path, record: dict) -> None:
    write_file_atomically(folder / TARGET_FILE, json.dumps(record, sort_keys=True, indent=2), sync_directory=False)


def _sync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_model_config(model_dir) -> str | None:
    if model_dir is None:
        return None
    try:
        with open(Path(model_dir) / "mlc-chat-config.json", "rb") as handle:
            return hash_file(handle)
    except OSError as exc:
        raise EngineError(code="model_invalid", message=f"cannot read {model_dir}/mlc-chat-config.json: {exc}") from exc


def keep_model_library(
    data_dir, model_id: str, target: LibraryTarget, library_path, source: str, *, model_dir=None
) -> Path:
    """Copy `library_path` into `<data_dir>/libs/<model_id>/<target.key>/` beside its target.json; return the copy.

    The copy appears whole, and target.json (the commit) is replaced last: a reader sees the previous
    library or this one, never part of one. `source`: "prebuilt" or "jit". With `model_dir`, the record
    also pins that model's mlc-chat-config.json. EngineError for a bad id, source or library file.
    """
    if not isinstance(model_id, str) or not _ID.fullmatch(model_id) or model_id.endswith(".lock"):
        raise EngineError(code="invalid_model_id", message=f"{model_id!r} is not a usable model id")
    if source not in LIBRARY_SOURCES:
        raise EngineError(code="library_invalid", message=f"library source must be one of {LIBRARY_SOURCES}")
    config_sha256 = _hash_model_config(model_dir)
    folder = Path(data_dir) / LIBS_DIR / model_id / target.key
    folder.mkdir(parents=True, exist_ok=True)
    handle = _open_library(library_path)
    with handle, _lock(folder.parent):
        _remove_leftovers(folder, keep=None)
        kept, digest, size = _copy_library(handle, folder, model_id)
        _write_record(
            folder,
            {
                "version": RECORD_VERSION,
                "target": asdict(target),
                "library": kept.name,
                "size": size,
                "sha256": digest,
                "source": source,
                "model_config_sha256": config_sha256,
            },
        )
        _sync_directory(folder)
        _remove_leftovers(folder, keep=kept.name)
    return kept
