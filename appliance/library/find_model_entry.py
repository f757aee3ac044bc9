"""Which models may be installed: the whitelist, plus what an admin added with its manifest."""

from __future__ import annotations

import json

from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ModelSource, WhitelistEntry
from appliance.library.parse_manifest import parse_manifest
from appliance.library.whitelist import WHITELIST
from appliance.store.store_models import LibraryModel


def find_model_entry(model_id: str) -> WhitelistEntry:
    """The entry for `model_id`; LibraryError "model_unknown" when nothing allows installing it."""
    for entry in WHITELIST:
        if entry.id == model_id:
            return entry
    row = LibraryModel.get_or_none((LibraryModel.id == model_id) & (LibraryModel.pinned_by == "admin"))
    if row is None or not row.manifest:
        raise LibraryError(code="model_unknown", message=f"{model_id!r} is neither whitelisted nor added by an admin")
    manifest = parse_manifest(json.loads(row.manifest))
    source = ModelSource(**json.loads(row.source)) if row.source else ModelSource(kind="dir", base="")
    return WhitelistEntry(
        id=row.id,
        format=row.format,
        engine=row.engine,
        source=source,
        size_bytes=manifest.total_size,
        license="",
        min_memory_bytes=0,
        boards=(),
        root_hash=manifest.root,
        files=tuple(f.path for f in manifest.files),
        manifest=manifest,
    )
