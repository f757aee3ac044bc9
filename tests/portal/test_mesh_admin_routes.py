"""The mesh on the admin API through Flask's test client: the admin cookie, the key (stored, shown, created,
joined), and the live peer table as the admin page reads it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from flask import Flask

from appliance.admin.admin_types import AdminHooks, InstallJobs
from appliance.admin.install_job_types import InstallJob
from appliance.admin.set_admin_pin import set_admin_pin
from appliance.admin.start_admin_sessions import start_admin_sessions
from appliance.engine.engine_types import Engine
from appliance.mesh.agent.mesh_agent_types import MESH_KEY_FILE
from appliance.mesh.agent.parse_presence import parse_presence
from appliance.mesh.agent.presence_types import PeerEntry
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.pieces.encode_piece_set import encode_piece_set
from appliance.portal.build_admin_blueprint import build_admin_blueprint
from appliance.portal.build_admin_session_blueprint import build_admin_session_blueprint
from appliance.portal.build_mesh_admin_blueprint import build_mesh_admin_blueprint
from appliance.portal.create_app import create_app
from appliance.portal.portal_types import ChatDefaults, UnitInfo
from appliance.store.open_database import open_database

PIN = "42424242"
NODE = "node-self"
SECRET = bytes(range(32))
KEY = create_mesh_key(SECRET)
MESH_ID = derive_mesh_secrets(parse_mesh_key(KEY)).mesh_id
MESH_PATHS = [
    ("GET", "/api/admin/mesh"),
    ("GET", "/api/admin/mesh/key"),
    ("POST", "/api/admin/mesh/create"),
    ("POST", "/api/admin/mesh/join"),
]


def _fake_engine() -> Engine:
    return Engine(
        kind="fake", model_id="m", n_ctx=256, stream_chat=lambda request, cancel: iter(()), close=lambda: None
    )


def _fake_hooks(data_dir: Path) -> AdminHooks:
    jobs = InstallJobs(start=lambda model: InstallJob(model), cancel=lambda model: None, describe=dict)
    return AdminHooks(data_dir=data_dir, node_id=NODE, memory_bytes=0, jobs=jobs, switch_model=lambda model: None)


def _entry(state: str, payload: dict, **fields) -> PeerEntry:
    return PeerEntry(state=state, presence=parse_presence(payload, payload["node"]), **fields)


def _presence(name: str, **extra) -> dict:
    return {
        "v": 1,
        "state": "online",
        "node": name,
        "name": f"iplm-{name}",
        "engine": "llama.cpp",
        "device": "generic-x86_64",
        "memory_free": 2_000_000_000,
        "load": {"workers": 1, "workers_ready": 0, "busy": 0, "queued": 0},
        "models": [],
        "address": "10.77.0.2",
        "broker": 1883,
        "portal": 8080,
        "will_id": "ab",
        **extra,
    }


@pytest.fixture(name="data_dir")
def _data_dir(tmp_path):
    database = open_database(tmp_path)
    set_admin_pin(PIN)
    yield tmp_path
    database.close()


@pytest.fixture(name="status")
def _status():
    """What the fake agent answers: a peer table, or None (no agent running)."""
    return {"table": None}


def _build_app(data_dir: Path, status: dict, describe_self=None, mesh_status=None, use_mesh_key=None) -> Flask:
    # The portal without create_app's own admin wiring, so that each test gives the mesh routes what it needs.
    unit = UnitInfo(node_id=NODE, name="iplm-self", defaults=ChatDefaults(), device={})
    app = create_app(_fake_engine, unit)
    sessions = start_admin_sessions()
    mesh = build_mesh_admin_blueprint(
        data_dir=data_dir,
        node_id=NODE,
        mesh_status=mesh_status or (lambda: status["table"]),
        describe_self=describe_self,
        use_mesh_key=use_mesh_key,
    )
    app.register_blueprint(build_admin_session_blueprint(sessions, _fake_hooks(data_dir)))
    app.register_blueprint(build_admin_blueprint(_fake_hooks(data_dir), _fake_engine, sessions, nested=(mesh,)))
    return app


@pytest.fixture(name="app")
def _app(data_dir, status):
    return _build_app(data_dir, status)


@pytest.fixture(name="admin")
def _admin(app):
    client = app.test_client()
    assert client.post("/api/admin/session", json={"pin": PIN}).status_code == 200
    return client


def test_every_mesh_route_needs_the_admin_cookie(app, data_dir):
    store_mesh_key(data_dir, KEY)
    phone = app.test_client()
    for method, path in MESH_PATHS:
        response = phone.open(path, method=method, json={"key": KEY, "force": True})
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "admin_required"
        assert KEY not in response.get_data(as_text=True)
    assert load_mesh_key(data_dir) == parse_mesh_key(KEY)  # nothing was replaced


def test_the_routes_refuse_to_be_served_outside_the_admin_guard():
    with pytest.raises(RuntimeError):
        Flask("bare").register_blueprint(
            build_mesh_admin_blueprint(data_dir="/nonexistent", node_id=NODE, mesh_status=lambda: None)
        )


def test_a_unit_in_no_mesh(admin):
    body = admin.get("/api/admin/mesh").get_json()
    assert isinstance(body.pop("now"), float)
    assert body == {
        "mesh_id": None,
        "self": NODE,
        "running": False,
        "key_set": False,
        "key_error": None,
        "restart_needed": False,
        "unit": None,
        "peers": {},
    }
    response = admin.get("/api/admin/mesh/key")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "no_mesh"


def test_create_stores_a_new_key_then_refuses_to_replace_it_unless_forced(admin, data_dir):
    response = admin.post("/api/admin/mesh/create")  # no body at all: no options
    assert response.status_code == 200
    created = response.get_json()
    assert created["restart_needed"] is True and len(created["mesh_id"]) == 16
    key_file = data_dir / MESH_KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert derive_mesh_secrets(load_mesh_key(data_dir)).mesh_id == created["mesh_id"]
    assert KEY not in response.get_data(as_text=True)

    refused = admin.post("/api/admin/mesh/create", json={})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "mesh_exists"
    assert created["mesh_id"] in refused.get_json()["error"]["message"]
    assert admin.post("/api/admin/mesh/create", json={"force": "yes"}).status_code == 409  # only true forces
    forced = admin.post("/api/admin/mesh/create", json={"force": True}).get_json()
    assert forced["mesh_id"] != created["mesh_id"]
    assert derive_mesh_secrets(load_mesh_key(data_dir)).mesh_id == forced["mesh_id"]

    body = admin.get("/api/admin/mesh").get_json()
    assert body["mesh_id"] == forced["mesh_id"] and body["key_set"] is True and body["restart_needed"] is True
    assert "key" not in body and key_file.read_text().strip() not in str(body)


def test_join_checks_the_key_and_stores_it_canonical(admin, data_dir):
    # As a QR scanner reads it (upper case) and as a person types it (grouped with spaces).
    typed = " ".join([KEY.upper()[:10], KEY.upper()[10:30], KEY.upper()[30:]])
    response = admin.post("/api/admin/mesh/join", json={"key": typed})
    assert response.status_code == 200
    assert response.get_json() == {"mesh_id": MESH_ID, "restart_needed": True}
    assert (data_dir / MESH_KEY_FILE).read_text().strip() == KEY
    assert admin.get("/api/admin/mesh").get_json()["mesh_id"] == MESH_ID


@pytest.mark.parametrize(
    "key, code",
    [
        ("hello", "bad_prefix"),
        (KEY[:-1], "bad_length"),
        (KEY[:-1] + ("a" if KEY[-1] != "a" else "b"), "bad_checksum"),
        (KEY[:-1] + "1", "bad_characters"),
    ],
)
def test_join_answers_400_with_what_is_wrong_with_a_bad_key(admin, data_dir, key, code):
    response = admin.post("/api/admin/mesh/join", json={"key": key})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code and error["param"] == "key" and error["message"]
    assert not (data_dir / MESH_KEY_FILE).exists()


@pytest.mark.parametrize("body", [{}, {"key": 42}, {"key": "  "}, ["iplm1-"]])
def test_join_needs_a_key(admin, body):
    response = admin.post("/api/admin/mesh/join", json=body)
    assert response.status_code == 400


def test_the_key_is_shown_only_when_asked_and_never_cached(admin, data_dir):
    store_mesh_key(data_dir, KEY.upper())
    response = admin.get("/api/admin/mesh/key")
    assert response.status_code == 200
    assert response.get_json() == {"key": KEY}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_damaged_key_file_is_reported_not_shown(admin, data_dir):
    (data_dir / MESH_KEY_FILE).write_text("iplm1-broken\n")
    body = admin.get("/api/admin/mesh").get_json()
    assert body["mesh_id"] is None and body["key_set"] is True and "characters" in body["key_error"]
    assert admin.get("/api/admin/mesh/key").status_code == 409
    assert admin.post("/api/admin/mesh/create").status_code == 200  # nothing worth keeping: no force needed


def test_a_key_present_at_start_needs_no_restart(data_dir, status):
    store_mesh_key(data_dir, KEY)
    client = _build_app(data_dir, status).test_client()
    client.post("/api/admin/session", json={"pin": PIN})
    assert client.get("/api/admin/mesh").get_json()["restart_needed"] is False
    assert client.post("/api/admin/mesh/join", json={"key": KEY}).get_json() == {
        "mesh_id": MESH_ID,
        "restart_needed": False,
    }


def test_a_unit_that_uses_a_stored_key_at_once_needs_no_restart(data_dir, status):
    used = []

    def use_mesh_key():
        used.append(load_mesh_key(data_dir))  # the key is stored before the unit is told

    client = _build_app(data_dir, status, use_mesh_key=use_mesh_key).test_client()
    client.post("/api/admin/session", json={"pin": PIN})
    created = client.post("/api/admin/mesh/create").get_json()
    assert created["restart_needed"] is False and len(used) == 1 and used[0] is not None
    assert client.post("/api/admin/mesh/join", json={"key": KEY}).get_json() == {
        "mesh_id": MESH_ID,
        "restart_needed": False,
    }
    assert len(used) == 2 and used[1] == parse_mesh_key(KEY)
    assert client.get("/api/admin/mesh").get_json()["restart_needed"] is False
    # A refused request stores nothing and starts nothing.
    assert client.post("/api/admin/mesh/join", json={"key": "iplm1-nonsense"}).status_code == 400
    assert client.post("/api/admin/mesh/create").status_code == 409
    assert len(used) == 2


def test_peers_come_from_the_running_agent(data_dir, status):
    store_mesh_key(data_dir, KEY)
    partial = {"id": "Qwen", "state": "partial", "engine": "mlc", "pieces": encode_piece_set([0, 1, 2, 5], 10)}
    status["table"] = {  # what the agent holds: each presence as parse_presence read it off the wire
        "node-b": _entry(
            "online",
            _presence(
                "b",
                models=[
                    {"id": "SmolLM2", "state": "installed", "engine": "llama.cpp", "root": "ab", "size": 9},
                    partial,
                    {"id": "Odd", "state": "available"},
                    "junk",
                    {"state": "installed"},
                ],
            ),
            last_seen=1000.5,
            via="10.77.0.2:1883",
            since=990.0,
            rssi=-61,
        ),
        "node-c": _entry(
            "gone",
            _presence("c", state="gone", load=True, memory_free="lots"),
            last_seen=900.0,
            via="10.77.0.3:1883",
            since=910.0,
            reason="silent",
        ),
        "node-d": _entry(
            "online",
            _presence("d", models=[{"id": "Broken", "state": "partial", "pieces": {"n": 3, "ranges": [[0, 9]]}}]),
            last_seen=1000.0,
            via="10.77.0.4:1883",
            since=1000.0,
        ),
    }
    me = _presence("self", models=[{"id": "SmolLM2", "state": "installed"}])
    client = _build_app(data_dir, status, describe_self=lambda: me).test_client()
    client.post("/api/admin/session", json={"pin": PIN})
    body = client.get("/api/admin/mesh").get_json()
    assert body["running"] is True and body["mesh_id"] == MESH_ID and body["self"] == NODE
    assert body["unit"]["name"] == "iplm-self" and body["unit"]["models"] == [{"id": "SmolLM2", "state": "installed"}]
    peers = body["peers"]
    assert set(peers) == {"node-b", "node-c", "node-d"}
    assert peers["node-b"] == {
        "state": "online",
        "name": "iplm-b",
        "address": "10.77.0.2",
        "engine": "llama.cpp",
        "device": "generic-x86_64",
        "memory_free": 2_000_000_000,
        "load": {
            "workers": 1,
            "workers_ready": 0,
            "busy": 0,
            "queued": 0,
            # Nothing measured or estimated in this presence: unknown, not zero.
            "model": None,
            "start_in_s": None,
            "prefill_tokens_per_s": None,
            "decode_tokens_per_s": None,
            "speed_age_s": None,
            "slots_ready": 0,
        },
        "models": [
            {"id": "SmolLM2", "state": "installed"},
            {"id": "Qwen", "state": "partial", "pieces": {"held": 4, "total": 10}},
        ],
        "via": "10.77.0.2:1883",
        "last_seen": 1000.5,
        "since": 990.0,
        "reason": None,
        "rssi": -61,
    }
    gone = peers["node-c"]
    assert gone["state"] == "gone" and gone["reason"] == "silent" and "rssi" not in gone
    # What a peer sends is checked, not trusted: a load of `true` counts nothing, "lots" of memory is unknown.
    assert gone["load"]["workers"] == 0 and gone["load"]["queued"] == 0 and gone["load"]["start_in_s"] is None
    assert gone["memory_free"] is None
    assert peers["node-d"]["models"] == [{"id": "Broken", "state": "partial"}]  # a bad piece set: no percent
    assert KEY not in str(body)


def test_an_agent_that_fails_reads_as_not_running(data_dir):
    def fail():
        raise OSError("agent hiccup")

    client = _build_app(data_dir, {}, describe_self=lambda: 1 / 0, mesh_status=fail).test_client()
    client.post("/api/admin/session", json={"pin": PIN})
    response = client.get("/api/admin/mesh")
    assert response.status_code == 200
    body = response.get_json()
    assert body["running"] is False and body["peers"] == {} and body["unit"] is None


def test_this_unit_described_from_its_store_as_create_app_wires_it(data_dir, status):
    # The wiring create_app uses: this unit's own presence, from its database, in the centre of the picture.
    engine = _fake_engine()
    unit = UnitInfo(node_id=NODE, name="iplm-self", defaults=ChatDefaults(), device={"board": "generic-x86_64"})
    app = create_app(lambda: engine, unit, _fake_hooks(data_dir), mesh_status=lambda: None)
    client = app.test_client()
    client.post("/api/admin/session", json={"pin": PIN})
    me = client.get("/api/admin/mesh").get_json()["unit"]
    assert me["name"] == "iplm-self" and me["engine"] == "fake" and me["device"] == "generic-x86_64"
    assert isinstance(me["models"], list) and isinstance(me["memory_free"], int)
