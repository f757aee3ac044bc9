"""The JSON form of a manifest, as served to peers, written by `iplm models manifest`, read by parse_manifest."""

from __future__ import annotations

from appliance.library.library_types import MANIFEST_VERSION, Manifest


def render_manifest(manifest: Manifest) -> dict:
    """Return the manifest as a JSON-ready dict: the canonical fields (see hash_manifest) and "root"."""
    return {
        "version": MANIFEST_VERSION,
        "format": manifest.format,
        "piece_size": manifest.piece_size,
        "files": [
            {"path": file.path, "size": file.size, "sha256": file.sha256, "pieces": list(file.pieces)}
            for file in sorted(manifest.files, key=lambda file: file.path)
        ],
        "root": manifest.root,
    }
