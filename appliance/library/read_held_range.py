"""Read a byte range of a model file, only where every piece it touches is held and verified."""

from __future__ import annotations

from pathlib import Path

from appliance.library.describe_held_model import describe_held_model
from appliance.library.library_errors import LibraryError, ManifestError, RangeError
from appliance.library.resolve_model_path import resolve_model_path

MAX_RANGE_BYTES = 64 * 1024 * 1024  # a few pieces: a peer never makes this unit read a whole model at once


def read_held_range(
    data_dir: str | Path, node_id: str, model_id: str, path: str, start: int, end: int
) -> tuple[bytes, int]:
    """(bytes start..end (inclusive) of `path` in `model_id`, the file's size).

    LibraryError codes: "model_not_held", "file_not_found", "piece_not_held"; RangeError ("range_invalid")
    for a range outside the file or too long.
    """
    model = describe_held_model(model_id, node_id)
    if model is None:
        raise LibraryError("model_not_held", f"This unit holds no verified pieces of {model_id}.")
    size = model.file_sizes.get(path)
    if size is None:
        raise LibraryError("file_not_found", f"{path} is not part of {model_id}.")
    if start < 0 or end < start or end >= size or end - start + 1 > MAX_RANGE_BYTES:
        raise RangeError("That range is outside the file.", file_size=size)
    needed = range(start // model.piece_size, end // model.piece_size + 1)
    if any((path, index) not in model.held for index in needed):
        raise LibraryError("piece_not_held", "This unit does not hold every piece of that range (yet).")
    try:
        with open(resolve_model_path(Path(data_dir) / "models" / model_id, path), "rb") as handle:
            handle.seek(start)
            return handle.read(end - start + 1), size
    except (OSError, ManifestError) as exc:
        raise LibraryError("file_not_found", f"{path} cannot be read here.") from exc
