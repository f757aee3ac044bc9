"""Peer requests are dated on the asking unit's own clock, as its presence showed it: a drifted unit is served."""

import time

import pytest
from flask import Flask

from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request
from appliance.mesh.messages.verify_peer_request import verify_peer_request
from appliance.portal.build_peer_blueprint import build_peer_blueprint
from appliance.portal.portal_types import ApiError
from appliance.store.open_database import open_database

SECRETS = derive_mesh_secrets(MeshKey(secret=bytes(range(32))))
NOW_MS = 1_800_000_000_000
DRIFTED = "dddddddddddddddd"  # its clock is 10 minutes behind ours
OFFSETS = {DRIFTED: -600_000}
PATH = "/mesh/models/Toy/manifest"


def _verify(node: str, sent_ms: int, offsets=OFFSETS) -> str:
    header = sign_peer_request(SECRETS, node, "GET", PATH, "", now_ms=sent_ms)
    return verify_peer_request(SECRETS, header, "GET", PATH, "", now_ms=NOW_MS, clock_offset_ms=offsets.get)


def test_a_drifted_units_request_is_read_on_its_own_clock():
    assert _verify(DRIFTED, NOW_MS - 600_000) == DRIFTED
    with pytest.raises(MeshMessageError) as info:  # dated on our clock, it would be 10 minutes in its future
        _verify(DRIFTED, NOW_MS)
    assert info.value.code == "stale"


def test_a_unit_never_heard_is_read_on_our_clock_with_the_same_window():
    other = "eeeeeeeeeeeeeeee"
    assert _verify(other, NOW_MS - 59_000) == other
    for sent in (NOW_MS - 61_000, NOW_MS + 61_000, NOW_MS - 600_000):
        with pytest.raises(MeshMessageError):
            _verify(other, sent)


def test_the_piece_service_asks_the_mesh_agent_for_the_askers_offset(tmp_path):
    open_database(tmp_path)
    app = Flask(__name__)
    app.register_error_handler(ApiError, lambda exc: ({"code": exc.code}, exc.status))
    asked = []

    def offset(node: str) -> int | None:
        asked.append(node)
        return OFFSETS.get(node)

    app.register_blueprint(
        build_peer_blueprint(
            data_dir=tmp_path,
            node_id="a" * 16,
            load_secrets=lambda: SECRETS,
            load_identity=lambda: None,
            clock_offset_ms=offset,
        )
    )
    now_ms = int(time.time() * 1000)
    with app.test_client() as client:
        drifted = sign_peer_request(SECRETS, DRIFTED, "GET", PATH, "", now_ms=now_ms - 600_000)
        on_our_clock = sign_peer_request(SECRETS, DRIFTED, "GET", PATH, "", now_ms=now_ms + 1)
        served = client.get(PATH, headers={PEER_AUTH_HEADER: drifted})
        refused = client.get(PATH, headers={PEER_AUTH_HEADER: on_our_clock})
    # Past the signature check: this unit simply holds no such model.
    assert (served.status_code, served.json["code"]) == (404, "model_not_held")
    assert (refused.status_code, refused.json["code"]) == (403, "stale")
    assert asked == [DRIFTED, DRIFTED]
