"""The root hash of a manifest: SHA-256 over its canonical JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from appliance.library.library_types import MANIFEST_VERSION, ManifestFile


def hash_manifest(format: str, piece_size: int, files: Iterable[ManifestFile]) -> str:
    """Return the root hash (lowercase hex SHA-256) of a manifest's canonical form.

    The canonical form, which every implementation must reproduce byte for byte, is the UTF-8 encoding of
    Python's `json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` where doc is
    `{"version": MANIFEST_VERSION, "format": format, "piece_size": piece_size, "files": [{"path": str,
    "size": int, "sha256": hex, "pieces": [hex, ...]}, ...]}` and files are sorted by path (by Unicode
    code point, which is also the byte order of their UTF-8). That is: object keys sorted, no whitespace,
    integers in decimal, non-ASCII characters as raw UTF-8, '"' as '\\"' and '/' unescaped (paths hold no
    backslash or control character), hex digests lowercase, an empty file with an empty pieces list.
    """
    doc = {
        "version": MANIFEST_VERSION,
        "format": format,
        "piece_size": piece_size,
        "files": [
            {"path": file.path, "size": file.size, "sha256": file.sha256, "pieces": list(file.pieces)}
            for file in sorted(files, key=lambda file: file.path)
        ],
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()
