"""What a unit serves to the other units of its mesh: manifests and verified pieces, over HTTP range requests.

Every request carries a mesh signature (sign_peer_request); phones and units of other meshes get 403.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from appliance.library.describe_held_model import describe_held_model
from appliance.library.library_errors import LibraryError, RangeError
from appliance.library.read_held_range import read_held_range
from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER
from appliance.mesh.messages.start_replay_memory import start_replay_memory
from appliance.mesh.messages.verify_peer_request import PEER_REQUEST_SKEW_MS, verify_peer_request
from appliance.portal.portal_types import ApiError

_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
_NOT_FOUND = ("model_not_held", "file_not_found", "piece_not_held")


def build_peer_blueprint(*, data_dir: Path, node_id: str, load_secrets: Callable[[], MeshSecrets | None]) -> Blueprint:
    """/mesh/models/<id>/manifest and /mesh/models/<id>/files/<path> (single byte ranges of held pieces)."""
    peers = Blueprint("peers", __name__, url_prefix="/mesh")
    # A signature is fresh for PEER_REQUEST_SKEW_MS either way: remembered twice that long, it is answered once.
    answered = start_replay_memory(2 * PEER_REQUEST_SKEW_MS / 1000)

    def authenticate() -> str:
        secrets = load_secrets()
        if secrets is None:
            raise ApiError(404, "This unit is in no mesh.", code="no_mesh")
        signature = request.headers.get(PEER_AUTH_HEADER)
        try:
            node = verify_peer_request(
                secrets,
                signature,
                request.method,
                request.path,
                request.headers.get("Range", ""),
                now_ms=int(time.time() * 1000),
            )
        except MeshMessageError as exc:
            raise ApiError(403, exc.message, code=exc.code) from exc
        if not answered.remember(signature or ""):
            raise ApiError(403, "This signed request was answered already (a replay).", code="replay")
        return node

    @peers.get("/models/<model_id>/manifest")
    def serve_manifest(model_id: str):
        authenticate()
        model = describe_held_model(model_id, node_id)
        if model is None:
            raise ApiError(404, f"This unit holds no verified pieces of {model_id}.", code="model_not_held")
        return jsonify(
            {
                "model": model_id,
                "format": model.format,
                "engine": model.engine,
                "root_hash": model.root_hash,
                "manifest": model.manifest,
                "held": [list(piece) for piece in sorted(model.held)],
            }
        )

    @peers.get("/models/<model_id>/files/<path:path>")
    def serve_piece_range(model_id: str, path: str):
        authenticate()
        match = _RANGE.fullmatch(request.headers.get("Range", ""))
        if match is None:
            raise ApiError(400, "Ask for one byte range: Range: bytes=START-END.", code="range_required")
        start, end = int(match[1]), int(match[2])
        try:
            data, size = read_held_range(data_dir, node_id, model_id, path, start, end)
        except RangeError as exc:
            response = jsonify(ApiError(416, exc.message, code=exc.code).to_json())
            response.status_code = 416
            response.headers["Content-Range"] = f"bytes */{exc.file_size}"
            return response
        except LibraryError as exc:
            raise ApiError(404 if exc.code in _NOT_FOUND else 400, exc.message, code=exc.code) from exc
        response = Response(data, status=206, mimetype="application/octet-stream")
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        response.headers["Accept-Ranges"] = "bytes"
        return response

    return peers
