"""Let an admin make a model installable by giving its manifest (and, optionally, where to get it)."""

from __future__ import annotations

import dataclasses
import json
import re

from appliance.library.library_errors import LibraryError
from appliance.library.library_types import Manifest, ModelSource
from appliance.library.render_manifest import render_manifest
from appliance.library.whitelist import WHITELIST
from appliance.store.store_models import LibraryModel, database

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ENGINES = {"mlc": "mlc", "gguf": "llama.cpp"}


def add_model(model_id: str, manifest: Manifest, source: ModelSource | None = None) -> dict:
    """Record an admin-vouched model: its manifest's root hash is pinned, its pieces verified on install."""
    if not _ID.fullmatch(model_id or "") or model_id.endswith(".lock"):
        raise LibraryError(
            code="invalid_model_id",
            message=f"{model_id!r} is not a usable model id (letters, digits, '.', '_', '-'; at most 128)",
        )
    if any(entry.id == model_id for entry in WHITELIST):
        raise LibraryError(code="model_exists", message=f"{model_id} is already whitelisted")
    with database.atomic():
        row = LibraryModel.get_or_none(LibraryModel.id == model_id)
        if row is not None and (row.pinned_by != "admin" or row.state != "available"):
            raise LibraryError(code="model_exists", message=f"{model_id} is already known to this unit ({row.state})")
        fields = {
            "format": manifest.format,
            "engine": _ENGINES[manifest.format],
            "state": "available",
            "root_hash": manifest.root,
            "pinned_by": "admin",
            "manifest": json.dumps(render_manifest(manifest), sort_keys=True),
            "source": json.dumps(dataclasses.asdict(source)) if source else None,
            "total_bytes": manifest.total_size,
            "piece_size": manifest.piece_size,
        }
        if row is None:
            LibraryModel.create(id=model_id, **fields)
        else:
            LibraryModel.update(**fields).where(LibraryModel.id == model_id).execute()
    return {"id": model_id, "root_hash": manifest.root, "format": manifest.format, "total_bytes": manifest.total_size}
