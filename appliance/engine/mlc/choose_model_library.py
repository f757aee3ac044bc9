"""Pick the kept MLC model library that fits this unit's board and toolchain, if there is one."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path

from appliance.engine.engine_types import EngineError
from appliance.engine.mlc.library_target import LIBRARY_SOURCES, LIBS_DIR, RECORD_VERSION, TARGET_FILE, LibraryTarget
from appliance.hash_file import hash_file

_log = logging.getLogger("iplm.library")
# The model id rule of add_model: one safe path component.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LIBRARY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}\.so")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A target.json is a few hundred bytes; anything far larger is not ours.
_RECORD_LIMIT = 1 << 16
_TARGET_FIELDS = tuple(field.name for field in dataclasses.fields(LibraryTarget))


def _parse_record(data) -> dict | None:
    """The record if it has the shape keep_model_library writes, else None."""
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return None
    target = data.get("target")
    if not isinstance(target, dict) or set(target) != set(_TARGET_FIELDS):
        return None
    if not all(isinstance(value, str) for value in target.values()):
        return None
    library, digest, size = data.get("library"), data.get("sha256"), data.get("size")
    config = data.get("model_config_sha256")
    if not (isinstance(library, str) and _LIBRARY_NAME.fullmatch(library) and ".." not in library):
        return None
    if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        return None
    if not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        return None
    if data.get("source") not in LIBRARY_SOURCES or not (
        config is None or (isinstance(config, str) and _SHA256.fullmatch(config))
    ):
        return None
    return {**data, "target": LibraryTarget(**target)}


def _read_record(path: Path) -> dict | None:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_RECORD_LIMIT + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _log.warning("cannot read %s, ignoring its library: %s", path, exc)
        return None
    try:
        record = _parse_record(json.loads(raw)) if len(raw) <= _RECORD_LIMIT else None
    except ValueError:  # not JSON, or not UTF-8
        record = None
    if record is None:
        _log.warning("%s is malformed, ignoring its library", path)
    return record


def _hash_model_config(model_dir) -> str | None:
    try:
        with open(Path(model_dir) / "mlc-chat-config.json", "rb") as handle:
            return hash_file(handle)
    except OSError:
        return None


def _hash_library(path: Path, size: int) -> str | None:
    try:
        with open(path, "rb") as handle:
            # A size that differs needs no hashing to tell.
            if os.fstat(handle.fileno()).st_size != size:
                return None
            return hash_file(handle)
    except OSError:
        return None


def choose_model_library(data_dir, model_id: str, target: LibraryTarget, *, model_dir=None) -> str | None:
    """The path of a kept library built for exactly `target` whose file still has its recorded SHA-256, or None.

    None means: open MLC with model_lib=None, so that it JIT-compiles one. With `model_dir`, the library
    must also have been kept for that model's current mlc-chat-config.json.
    """
    if not isinstance(model_id, str) or not _ID.fullmatch(model_id) or model_id.endswith(".lock"):
        raise EngineError(code="invalid_model_id", message=f"{model_id!r} is not a usable model id")
    folder = Path(data_dir) / LIBS_DIR / model_id / target.key
    record = _read_record(folder / TARGET_FILE)
    if record is None:
        return None
    if record["target"] != target:
        # Only a hand-copied or forged directory gets here: the key is a hash of the target.
        _log.warning("%s records another target than its directory's, ignoring its library", folder / TARGET_FILE)
        return None
    if model_dir is not None and record["model_config_sha256"] != _hash_model_config(model_dir):
        _log.info("the library in %s was built for another mlc-chat-config.json of %s", folder, model_id)
        return None
    library = folder / record["library"]
    if library.is_symlink() or not library.is_file():
        _log.warning("%s is missing or not a plain file, ignoring it", library)
        return None
    if _hash_library(library, record["size"]) != record["sha256"]:
        _log.warning("%s does not match its recorded SHA-256 (tampered or damaged), ignoring it", library)
        return None
    return str(library)
