"""What a unit serves to the other units of its mesh: manifests and verified pieces, over HTTP range requests.

Every request carries a mesh signature (sign_peer_request); phones and units of other meshes get 403.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

from flask import Flask, Response, jsonify, request

from appliance.library.library_errors import ManifestError
from appliance.library.resolve_model_path import resolve_model_path
from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.sign_peer_request import PEER_AUTH_HEADER
from appliance.mesh.verify_peer_request import verify_peer_request
from appliance.portal.portal_types import ApiError
from appliance.store.store_models import HeldPiece, LibraryModel, ModelFile

_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
_MAX_RANGE = 64 * 1024 * 1024


def _held(model_id: str, node_id: str) -> set[tuple[str, int]]:
    return {(h.path, h.piece) for h in
            HeldPiece.select().where((HeldPiece.model == model_id) & (HeldPiece.node_id == node_id))}


def register_peer_routes(app: Flask, *, data_dir: Path, node_id: str,
                         load_secrets: Callable[[], MeshSecrets | None]) -> None:
    """Add /mesh/models/<id>/manifest and /mesh/models/<id>/files/<path> (single byte ranges of held pieces)."""

    def authenticate() -> str:
        secrets = load_secrets()
        if secrets is None:
            raise ApiError(404, "This unit is in no mesh.", code="no_mesh")
        try:
            return verify_peer_request(secrets, request.headers.get(PEER_AUTH_HEADER), request.method,
                                       request.path, request.headers.get("Range", ""), now_ms=int(time.time() * 1000))
        except MeshMessageError as exc:
            raise ApiError(403, exc.message, code=exc.code) from exc

    def find_model(model_id: str) -> LibraryModel:
        row = LibraryModel.get_or_none(LibraryModel.id == model_id)
        if row is None or not row.manifest or row.state == "available":
            raise ApiError(404, f"This unit holds no verified pieces of {model_id}.", code="model_not_held")
        return row

    @app.get("/mesh/models/<model_id>/manifest")
    def serve_manifest(model_id: str):
        authenticate()
        row = find_model(model_id)
        held = sorted(_held(model_id, node_id))
        return jsonify({"model": model_id, "format": row.format, "engine": row.engine, "root_hash": row.root_hash,
                        "manifest": json.loads(row.manifest), "held": [list(h) for h in held]})

    @app.get("/mesh/models/<model_id>/files/<path:path>")
    def serve_piece_range(model_id: str, path: str):
        authenticate()
        row = find_model(model_id)
        file = ModelFile.get_or_none((ModelFile.model == model_id) & (ModelFile.path == path))
        if file is None:
            raise ApiError(404, f"{path} is not part of {model_id}.", code="file_not_found")
        match = _RANGE.fullmatch(request.headers.get("Range", ""))
        if match is None:
            raise ApiError(400, "Ask for one byte range: Range: bytes=START-END.", code="range_required")
        start, end = int(match[1]), int(match[2])
        if end < start or end >= file.size or end - start + 1 > _MAX_RANGE:
            response = jsonify(ApiError(416, "That range is outside the file.", code="range_invalid").to_json())
            response.status_code = 416
            response.headers["Content-Range"] = f"bytes */{file.size}"
            return response
        held = _held(model_id, node_id)
        needed = range(start // row.piece_size, end // row.piece_size + 1)
        if any((path, index) not in held for index in needed):
            raise ApiError(404, "This unit does not hold every piece of that range (yet).", code="piece_not_held")
        try:
            with open(resolve_model_path(Path(data_dir) / "models" / model_id, path), "rb") as handle:
                handle.seek(start)
                data = handle.read(end - start + 1)
        except (OSError, ManifestError) as exc:
            raise ApiError(404, f"{path} cannot be read here.", code="file_not_found") from exc
        response = Response(data, status=206, mimetype="application/octet-stream")
        response.headers["Content-Range"] = f"bytes {start}-{end}/{file.size}"
        response.headers["Accept-Ranges"] = "bytes"
        return response
