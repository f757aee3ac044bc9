"""Validate an untrusted manifest (admin upload, peer, file) into a Manifest."""

from __future__ import annotations

import re

from appliance.library.check_relative_path import check_relative_path
from appliance.library.hash_manifest import hash_manifest
from appliance.library.library_errors import ManifestError
from appliance.library.library_types import FORMATS, MANIFEST_VERSION, Manifest, ManifestFile

_MIN_PIECE_SIZE = 64 * 1024
_MAX_PIECE_SIZE = 64 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEYS = {"version", "format", "piece_size", "files", "root"}
_FILE_KEYS = {"path", "size", "sha256", "pieces"}
# build_manifest never lists compiled libraries; one in a manifest would be native code from a peer.
_LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(data: dict, expected: set, where: str) -> None:
    missing, unknown = expected - data.keys(), data.keys() - expected
    if missing:
        raise ManifestError(f"{where} lacks {', '.join(sorted(missing))}")
    if unknown:
        raise ManifestError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")


def _check_piece_size(piece_size) -> int:
    if not _is_int(piece_size):
        raise ManifestError("manifest piece_size must be an integer")
    if not _MIN_PIECE_SIZE <= piece_size <= _MAX_PIECE_SIZE or piece_size & (piece_size - 1):
        raise ManifestError(f"manifest piece_size {piece_size} is not a power of two from 64 KiB to 64 MiB")
    return piece_size


def _parse_file(index: int, entry, piece_size: int) -> ManifestFile:
    where = f"manifest file {index}"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} is not an object")
    _check_keys(entry, _FILE_KEYS, where)
    try:
        path = check_relative_path(entry["path"])
    except ManifestError as error:
        raise ManifestError(f"{where}: {error.message}") from None
    where = f"manifest file {path!r}"
    size, sha256, pieces = entry["size"], entry["sha256"], entry["pieces"]
    if not _is_int(size) or size < 0:
        raise ManifestError(f"{where}: size must be an integer >= 0")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ManifestError(f"{where}: sha256 must be 64 lowercase hex digits")
    if not isinstance(pieces, list):
        raise ManifestError(f"{where}: pieces must be a list")
    # An empty file has no pieces; every other piece is full but the last.
    expected = -(-size // piece_size)
    if len(pieces) != expected:
        raise ManifestError(f"{where}: {len(pieces)} pieces, but {size} bytes make {expected} of {piece_size}")
    if not all(isinstance(piece, str) and _SHA256.fullmatch(piece) for piece in pieces):
        raise ManifestError(f"{where}: every piece must be 64 lowercase hex digits")
    return ManifestFile(path=path, size=size, sha256=sha256, pieces=tuple(pieces))


def _check_paths(files: list[ManifestFile]) -> None:
    paths = [file.path for file in files]
    seen: set[str] = set()
    duplicates: set[str] = set()
    for path in paths:
        (duplicates if path in seen else seen).add(path)
    if duplicates:
        raise ManifestError(f"manifest lists {', '.join(map(repr, sorted(duplicates)))} more than once")
    directories = {path.rsplit("/", depth)[0] for path in paths for depth in range(1, path.count("/") + 1)}
    clashes = sorted(directories & seen)
    if clashes:
        raise ManifestError(f"manifest has {clashes[0]!r} both as a file and as a directory")
    libraries = [path for path in paths if path.lower().endswith(_LIBRARY_SUFFIXES)]
    if libraries:
        raise ManifestError(f"manifest lists a compiled library {libraries[0]!r}: those are built per board")


def _check_format(format: str, files: list[ManifestFile]) -> None:
    # The same rule build_manifest detects the format by.
    paths = [file.path for file in files]
    if format == "mlc" and "mlc-chat-config.json" not in paths:
        raise ManifestError("mlc manifest has no mlc-chat-config.json")
    if format == "gguf" and not (len(paths) == 1 and "/" not in paths[0] and paths[0].lower().endswith(".gguf")):
        raise ManifestError("gguf manifest must list exactly one .gguf file, at the top")


def parse_manifest(data) -> Manifest:
    """Validate a manifest's JSON form (see render_manifest) into a Manifest, files sorted by path.

    ManifestError (code "manifest_invalid") for any malformed field; code "root_mismatch" when the root
    is not the hash of the rest (see hash_manifest).
    """
    if not isinstance(data, dict):
        raise ManifestError("manifest must be a JSON object")
    _check_keys(data, _KEYS, "manifest")
    if not _is_int(data["version"]) or data["version"] != MANIFEST_VERSION:
        raise ManifestError(f"manifest version {data['version']!r} is not supported (expected {MANIFEST_VERSION})")
    format = data["format"]
    if not isinstance(format, str) or format not in FORMATS:
        raise ManifestError(f"manifest format {format!r} is not one of {', '.join(FORMATS)}")
    piece_size = _check_piece_size(data["piece_size"])
    if not isinstance(data["files"], list) or not data["files"]:
        raise ManifestError("manifest files must be a non-empty list")
    files = sorted(
        (_parse_file(index, entry, piece_size) for index, entry in enumerate(data["files"])), key=lambda file: file.path
    )
    _check_paths(files)
    _check_format(format, files)
    root = data["root"]
    if not isinstance(root, str) or not _SHA256.fullmatch(root):
        raise ManifestError("manifest root must be 64 lowercase hex digits")
    computed = hash_manifest(format, piece_size, files)
    if root != computed:
        raise ManifestError(f"manifest root {root} does not match its content ({computed})", code="root_mismatch")
    return Manifest(format=format, piece_size=piece_size, files=tuple(files), root=root)
