"""Build the manifest of a model directory (MLC) or of a single GGUF file, hashing every byte once."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from appliance.library.check_relative_path import check_relative_path
from appliance.library.check_tensor_cache import check_tensor_cache
from appliance.library.hash_manifest import hash_manifest
from appliance.library.library_errors import ManifestError
from appliance.library.library_types import DEFAULT_PIECE_SIZE, Manifest, ManifestFile

# Same bounds parse_manifest enforces, so that every built manifest parses.
_MIN_PIECE_SIZE = 64 * 1024
_MAX_PIECE_SIZE = 64 * 1024 * 1024
# Reads of 1 MiB into one reused buffer: as fast as larger reads with OpenSSL's SHA-256, little memory.
_BLOCK_SIZE = 1024 * 1024
_PROGRESS_EVERY = 64 * 1024 * 1024
# Compiled model libraries are built per board class and toolchain: not part of the portable model.
_LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")

Progress = Callable[[int, int], None]


def _check_piece_size(piece_size) -> None:
    if not isinstance(piece_size, int) or isinstance(piece_size, bool):
        raise ManifestError(f"piece size must be an integer, not {type(piece_size).__name__}")
    if not _MIN_PIECE_SIZE <= piece_size <= _MAX_PIECE_SIZE or piece_size & (piece_size - 1):
        raise ManifestError(f"piece size {piece_size} must be a power of two from 64 KiB to 64 MiB")


def _list_files(root: Path, prefix: str = "") -> list[tuple[str, int]]:
    found = []
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda entry: entry.name):
            relative = prefix + entry.name
            if entry.name.startswith("."):
                continue  # hidden: .git, .iplm-partial and other tools' state
            if entry.is_symlink():
                raise ManifestError(f"{relative!r} is a symbolic link: copy the file in instead")
            if entry.is_dir(follow_symlinks=False):
                found += _list_files(Path(entry.path), relative + "/")
            elif not entry.is_file(follow_symlinks=False):
                raise ManifestError(f"{relative!r} is not a regular file")
            elif not entry.name.lower().endswith(_LIBRARY_SUFFIXES):
                check_relative_path(relative)
                found.append((relative, entry.stat(follow_symlinks=False).st_size))
    return found


def _detect_format(files: list[tuple[str, int]], model_dir: Path) -> str:
    paths = [path for path, _ in files]
    if "mlc-chat-config.json" in paths:
        return "mlc"
    if len(paths) == 1 and "/" not in paths[0] and paths[0].lower().endswith(".gguf"):
        return "gguf"
    raise ManifestError(
        f"{model_dir} is not a model: no mlc-chat-config.json, and not exactly one .gguf file at its top"
    )


def _open_regular_file(path: Path, relative: str) -> int:
    # O_NOFOLLOW/O_NONBLOCK: a link or FIFO swapped in after the listing is refused, not followed or waited on.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ManifestError(f"{relative!r} is not a regular file")
    return fd


def _hash_file(path: Path, relative: str, size: int, piece_size: int, on_read: Callable[[int], None]) -> ManifestFile:
    whole, piece, piece_filled, pieces = hashlib.sha256(), hashlib.sha256(), 0, []
    buffer = memoryview(bytearray(_BLOCK_SIZE))
    read = 0
    with open(_open_regular_file(path, relative), "rb", buffering=0) as file:
        while True:
            # Never read across a piece boundary, so each block feeds exactly one piece.
            count = file.readinto(buffer[: min(_BLOCK_SIZE, piece_size - piece_filled)])
            if not count:
                break
            block = buffer[:count]
            whole.update(block)
            piece.update(block)
            piece_filled += count
            read += count
            on_read(count)
            if piece_filled == piece_size:
                pieces.append(piece.hexdigest())
                piece, piece_filled = hashlib.sha256(), 0
    if piece_filled:
        pieces.append(piece.hexdigest())
    if read != size:
        raise ManifestError(f"{relative!r} changed size while it was hashed ({size} then {read} bytes)")
    return ManifestFile(path=relative, size=size, sha256=whole.hexdigest(), pieces=tuple(pieces))


def _make_progress(total: int, progress: Progress | None) -> Callable[[int], None]:
    state = {"done": 0, "reported": 0}

    def count_read(count: int) -> None:
        state["done"] += count
        if progress and state["done"] - state["reported"] >= _PROGRESS_EVERY:
            state["reported"] = state["done"]
            progress(state["done"], total)

    return count_read


def build_manifest(model_dir, *, piece_size: int = DEFAULT_PIECE_SIZE, progress: Progress | None = None) -> Manifest:
    """Hash a model directory (or one .gguf file) into its Manifest; ManifestError if it is not a valid model.

    progress(done_bytes, total_bytes), if given, is called at the start, about every 64 MiB, and at the end.
    """
    _check_piece_size(piece_size)
    model_dir = Path(model_dir)
    try:
        mode = os.stat(model_dir).st_mode  # the argument itself may be a link: the user named it
    except FileNotFoundError:
        raise ManifestError(f"{model_dir}: no such file or directory") from None
    if stat.S_ISREG(mode):
        if not model_dir.name.lower().endswith(".gguf"):
            raise ManifestError(f"{model_dir} is not a .gguf file")
        # A single GGUF file, under the name the user gave (a Hugging Face cache links it to a blob).
        files = [(check_relative_path(model_dir.name), os.stat(model_dir).st_size)]
        locations = {model_dir.name: Path(os.path.realpath(model_dir))}
    elif stat.S_ISDIR(mode):
        files = sorted(_list_files(model_dir))
        locations = {path: model_dir / path for path, _ in files}
    else:
        raise ManifestError(f"{model_dir} is neither a directory nor a file")
    format = _detect_format(files, model_dir)
    if format == "mlc":
        check_tensor_cache(model_dir, dict(files))
    total = sum(size for _, size in files)
    on_read = _make_progress(total, progress)
    if progress:
        progress(0, total)
    hashed = tuple(_hash_file(locations[path], path, size, piece_size, on_read) for path, size in files)
    if progress:
        progress(total, total)
    return Manifest(format=format, piece_size=piece_size, files=hashed, root=hash_manifest(format, piece_size, hashed))
