"""Write a file so that readers (and a power cut) see the old content or the whole new one, never a part."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_file_atomically(
    path: str | Path, content: str | bytes, *, mode: int = 0o644, owner: str | None = None, sync_directory: bool = True
) -> None:
    """Write `content` (text as UTF-8) to a temporary file beside `path`, flush it to disk, give it `mode`
    (and `owner`), and rename it over `path`; then make the rename itself durable.

    The temporary file is created 0600: a secret is never readable by others, not even for a moment.
    """
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if owner is not None:
            shutil.chown(temporary, user=owner)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if sync_directory:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
