"""The mesh on the admin page (/api/admin/mesh…): the live peer table, the mesh key, creating and joining a mesh.

Every route sits behind the admin cookie: this blueprint only registers nested in the admin blueprint,
whose before_request guards it.
The key leaves the unit only through GET /api/admin/mesh/key (the admin asks for it, to show it as a QR code).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, jsonify
from flask.sansio.blueprints import BlueprintSetupState

from appliance.mesh.agent.mesh_agent_types import MESH_KEY_FILE
from appliance.mesh.agent.parse_presence import parse_presence
from appliance.mesh.agent.presence_types import PeerEntry, Presence, PresenceModel
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.mesh_errors import MeshKeyError
from appliance.mesh.pieces.decode_piece_set import decode_piece_set
from appliance.portal.portal_types import ApiError
from appliance.portal.read_json_object import read_json_object

_log = logging.getLogger("iplm.portal")


def _read_mesh_id(data_dir: Path) -> tuple[str | None, str | None]:
    """(mesh id, None), (None, None) when there is no key, (None, why) when the key file is damaged."""
    try:
        key = load_mesh_key(data_dir)
    except MeshKeyError as exc:
        return None, exc.message
    return (derive_mesh_secrets(key).mesh_id if key is not None else None), None


def _count_pieces(encoded: dict | None) -> dict | None:
    # The UI shows a percent; the ranges themselves are for installs (find_model_holders, install_from_peers).
    if encoded is None:
        return None
    total, ranges = decode_piece_set(encoded)  # parse_presence let only valid sets through
    return {"held": sum(stop - start for start, stop in ranges), "total": total}


def _describe_models(models: tuple[PresenceModel, ...]) -> list[dict]:
    described = []
    for model in models:
        entry: dict = {"id": model.id, "state": model.state}
        pieces = _count_pieces(model.pieces) if model.state == "partial" else None
        if pieces is not None:
            entry["pieces"] = pieces
        described.append(entry)
    return described


def _describe_unit(presence: Presence) -> dict:
    return {
        "name": presence.name or None,
        "address": presence.address or None,
        "engine": presence.engine or None,
        "device": presence.device or None,
        "memory_free": presence.memory_free,
        "load": dataclasses.asdict(presence.load),
        "models": _describe_models(presence.models),
    }


def _describe_peer(entry: PeerEntry) -> dict:
    peer = {
        "state": entry.state,
        **_describe_unit(entry.presence),
        "via": entry.via,
        "last_seen": entry.last_seen,
        "since": entry.since,
        "reason": entry.reason,
    }
    if entry.rssi is not None:
        peer["rssi"] = entry.rssi
    return peer


def _read_peers(mesh_status: Callable[[], dict[str, PeerEntry] | None]) -> dict | None:
    try:
        table = mesh_status()
    except Exception:  # a poll of the admin page must not fail because the agent hiccuped
        _log.exception("reading the mesh agent's peer table failed")
        return None
    if table is None:
        return None
    return {node: _describe_peer(entry) for node, entry in table.items()}


def _require_admin_parent(state: BlueprintSetupState) -> None:
    # These routes hand out the mesh's only secret: refuse to serve them anywhere but behind the admin guard.
    if state.name_prefix.split(".")[-1] != "admin":
        raise RuntimeError("the mesh admin blueprint must be nested in the admin blueprint (its guard)")


def build_mesh_admin_blueprint(
    *,
    data_dir,
    node_id: str,
    mesh_status: Callable[[], dict[str, PeerEntry] | None],
    describe_self: Callable[[], dict] | None = None,
    use_mesh_key: Callable[[], None] | None = None,
) -> Blueprint:
    """GET /api/admin/mesh, GET /api/admin/mesh/key, POST /api/admin/mesh/create and /join (nested in admin).

    mesh_status(): the running agent's peer table, None when no agent runs. describe_self(): this unit's
    presence (describe_unit_presence), shown in the centre of the picture; None leaves it out.
    use_mesh_key(): (re)start the unit's mesh on the key just stored; None: that waits for a restart.
    """
    mesh = Blueprint("mesh", __name__, url_prefix="/mesh")
    mesh.record(_require_admin_parent)
    data_dir = Path(data_dir)
    # Without use_mesh_key the agent runs on the key `iplm serve` started with; a newer one waits for a restart.
    started_mesh_id, _ = _read_mesh_id(data_dir)

    def is_restart_needed(mesh_id: str | None) -> bool:
        return use_mesh_key is None and mesh_id != started_mesh_id

    def answer_stored(mesh_id: str):
        if use_mesh_key is not None:
            use_mesh_key()
        return jsonify({"mesh_id": mesh_id, "restart_needed": is_restart_needed(mesh_id)})

    @mesh.get("")
    def describe_mesh():
        mesh_id, key_error = _read_mesh_id(data_dir)
        peers = _read_peers(mesh_status)
        unit = None
        if describe_self is not None:
            try:
                unit = _describe_unit(parse_presence({**describe_self(), "node": node_id}, node_id))
            except Exception:
                _log.exception("describing this unit for the admin page failed")
        response = jsonify(
            {
                "mesh_id": mesh_id,
                "self": node_id,
                "running": peers is not None,
                "key_set": (data_dir / MESH_KEY_FILE).exists(),
                "key_error": key_error,
                "restart_needed": is_restart_needed(mesh_id),
                "unit": unit,
                "peers": peers or {},
                "now": time.time(),  # the unit's clock, which last_seen and since use: the phone's may differ
            }
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @mesh.get("/key")
    def reveal_key():
        try:
            key = load_mesh_key(data_dir)
        except MeshKeyError as exc:
            raise ApiError(409, f"The stored mesh key is damaged: {exc.message}", code="mesh_key_damaged") from exc
        if key is None:
            raise ApiError(404, "This unit is in no mesh: create one or join one.", code="no_mesh")
        response = jsonify({"key": create_mesh_key(key.secret)})  # the canonical text, whatever was typed
        response.headers["Cache-Control"] = "no-store"  # no copy of the secret in any cache
        return response

    @mesh.post("/create")
    def create_mesh():
        force = read_json_object(allow_empty=True).get("force") is True
        current, _ = _read_mesh_id(data_dir)  # a damaged key file is nothing worth keeping (as the CLI does)
        if current is not None and not force:
            raise ApiError(
                409,
                f"This unit is already in mesh {current}; a new mesh replaces its key (the unit leaves that mesh).",
                code="mesh_exists",
            )
        key_text = create_mesh_key()
        store_mesh_key(data_dir, key_text)
        mesh_id = derive_mesh_secrets(parse_mesh_key(key_text)).mesh_id
        _log.info("the admin created mesh %s", mesh_id)
        return answer_stored(mesh_id)

    @mesh.post("/join")
    def join_mesh():
        text = read_json_object(allow_empty=True).get("key")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(
                400, "'key' must be the mesh key (it starts with 'iplm1-').", param="key", code="invalid_value"
            )
        try:
            key = parse_mesh_key(text)
        except MeshKeyError as exc:
            raise ApiError(400, exc.message, param="key", code=exc.code) from exc
        # Stored canonical: a scanned QR code is upper case, a typed key may be grouped with spaces.
        store_mesh_key(data_dir, create_mesh_key(key.secret))
        mesh_id = derive_mesh_secrets(key).mesh_id
        _log.info("the admin joined mesh %s", mesh_id)
        return answer_stored(mesh_id)

    return mesh
