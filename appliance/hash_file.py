"""Hash an open file in chunks: hashlib.file_digest is Python 3.11+, and a unit on JetPack 6 runs Python 3.10."""

from __future__ import annotations

import hashlib
import io

_CHUNK = 1 << 20


def hash_file(handle: io.BufferedIOBase, algorithm: str = "sha256", *, usedforsecurity: bool = True) -> str:
    """The hex digest of what is left to read in `handle`, read 1 MiB at a time into one reused buffer."""
    digest = hashlib.new(algorithm, usedforsecurity=usedforsecurity)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while count := handle.readinto(buffer):
        digest.update(view[:count])
    return digest.hexdigest()
