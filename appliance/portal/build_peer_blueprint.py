"""What a unit serves to the other units of its mesh: manifests and verified pieces, over HTTP range requests.

Every request carries a mesh signature (sign_peer_request); phones and units of other meshes get 403.
A manifest answer is signed by this unit's own key, for that one request (sign_peer_answer).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from appliance.library.describe_held_model import describe_held_model
from appliance.library.library_errors import LibraryError, RangeError
from appliance.library.read_held_range import read_held_range
from appliance.mesh.identity.identity_types import MeshAuthority, UnitIdentity
from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER
from appliance.mesh.messages.start_replay_memory import start_replay_memory
from appliance.mesh.messages.verify_peer_request import PEER_REQUEST_SKEW_MS, verify_peer_request
from appliance.mesh.pieces.sign_peer_answer import sign_peer_answer
from appliance.portal.portal_types import ApiError

_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
_NOT_FOUND = ("model_not_held", "file_not_found", "piece_not_held")


def build_peer_blueprint(
    *,
    data_dir: Path,
    node_id: str,
    load_secrets: Callable[[], MeshSecrets | None],
    load_identity: Callable[[], tuple[UnitIdentity, MeshAuthority] | None],
    clock_offset_ms: Callable[[str], int | None] = lambda _node: None,
) -> Blueprint:
    """/mesh/models/<id>/manifest (signed by `load_identity`'s unit key) and /mesh/models/<id>/files/<path>
    (single byte ranges of held pieces). A request's time is read on the asking unit's clock as its presence
    showed it (`clock_offset_ms(node)`, the mesh agent's), so a unit whose clock drifted is still served."""
    peers = Blueprint("peers", __name__, url_prefix="/mesh")
    # A signature is fresh for PEER_REQUEST_SKEW_MS either way: remembered twice that long, it is answered once.
    answered = start_replay_memory(2 * PEER_REQUEST_SKEW_MS / 1000)

    def authenticate() -> MeshSecrets:
        secrets = load_secrets()
        if secrets is None:
            raise ApiError(404, "This unit is in no mesh.", code="no_mesh")
        signature = request.headers.get(PEER_AUTH_HEADER)
        try:
            verify_peer_request(
                secrets,
                signature,
                request.method,
                request.path,
                request.headers.get("Range", ""),
                now_ms=int(time.time() * 1000),
                clock_offset_ms=clock_offset_ms,
            )
        except MeshMessageError as exc:
            raise ApiError(403, exc.message, code=exc.code) from exc
        if not answered.remember(signature or ""):
            raise ApiError(403, "This signed request was answered already (a replay).", code="replay")
        return secrets

    @peers.get("/models/<model_id>/manifest")
    def serve_manifest(model_id: str):
        secrets = authenticate()
        model = describe_held_model(model_id, node_id)
        if model is None:
            raise ApiError(404, f"This unit holds no verified pieces of {model_id}.", code="model_not_held")
        mesh = load_identity()
        if mesh is None:
            raise ApiError(404, "This unit is in no mesh.", code="no_mesh")
        body = json.dumps(
            {
                "model": model_id,
                "node": node_id,
                "format": model.format,
                "engine": model.engine,
                "root_hash": model.root_hash,
                "manifest": model.manifest,
                "held": [list(piece) for piece in sorted(model.held)],
            },
            sort_keys=True,
        ).encode("utf-8")
        # Signed over these very bytes and this very request: the asker counts it as this unit's word only.
        headers = sign_peer_answer(
            mesh[0],
            mesh_id=secrets.mesh_id,
            model_id=model_id,
            request_signature=request.headers.get(PEER_AUTH_HEADER, ""),
            body=body,
        )
        return Response(body, status=200, mimetype="application/json", headers=headers)

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
