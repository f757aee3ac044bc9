"""The admin API of a real `iplm serve`: PIN, model library with background installs, default model."""

from __future__ import annotations

import contextlib
import time

import pytest

from appliance.engine.default_model import DEFAULT_MODEL_ID
from tests.admin_unit import PIN
from tests.conftest import read_sse

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def unit(admin_unit):
    return admin_unit


@contextlib.contextmanager
def _admin(unit):
    with unit.client() as http:
        assert http.post("/api/admin/session", json={"pin": PIN}).status_code == 200
        yield http


def _models(http) -> dict:
    return {m["id"]: m for m in http.get("/api/admin/models").json()["models"]}


def _wait_job(http, model_id, states=("installed", "failed", "cancelled"), timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _models(http)[model_id]["job"]
        if job and job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"{model_id} never reached {states}")


def test_admin_routes_need_the_pin(unit):
    with unit.client() as http:
        for method, path in [
            ("GET", "/api/admin/models"),
            ("POST", "/api/admin/models/Toy-MLC/install"),
            ("DELETE", "/api/admin/models/Toy-MLC"),
            ("PUT", "/api/admin/default-model"),
        ]:
            response = http.request(method, path, json={})
            assert response.status_code == 401 and response.json()["error"]["code"] == "admin_required"
        assert http.get("/api/admin/session").json() == {"admin": False}
        # Two tries only: they count against this address, which the module's other tests sign in from.
        assert http.post("/api/admin/session", json={"pin": "00000000"}).status_code == 403
        assert (
            http.post("/api/admin/session", content=b"{", headers={"content-type": "application/json"}).status_code
            == 400
        )
        assert http.post("/api/admin/session", content=b"{").status_code == 415  # JSON only: no cross-site forms


def test_library_lists_embedded_whitelisted_and_admin_models(unit):
    with _admin(unit) as http:
        body = http.get("/api/admin/models").json()
        models = {m["id"]: m for m in body["models"]}
        assert body["default_model"] == DEFAULT_MODEL_ID and body["disk_free_bytes"] > 0
        assert models[DEFAULT_MODEL_ID]["state"] == "installed" and models[DEFAULT_MODEL_ID]["embedded"]
        assert models["Qwen2.5-0.5B-Instruct-q4f16_1-MLC"]["state"] == "available"
        assert models["Qwen2.5-0.5B-Instruct-q4f16_1-MLC"]["root_hash"] is None
        assert models["Toy-MLC"]["state"] == "available" and models["Toy-MLC"]["pinned_by"] == "admin"


def test_install_runs_in_the_background_with_progress_then_remove(unit):
    with _admin(unit) as http:
        unit.source.rate_limit(1_500_000)  # about 2.5 s: long enough to watch
        try:
            started = http.post("/api/admin/models/Toy-MLC/install")
            assert started.status_code == 202 and started.json()["job"]["state"] == "running"
            assert http.post("/api/admin/models/Toy-MLC/install").status_code == 409
            seen = []
            while not seen or seen[-1]["state"] == "running":
                seen.append(_models(http)["Toy-MLC"]["job"])
                time.sleep(0.1)
        finally:
            unit.source.rate_limit(None)
        assert seen[-1]["state"] == "installed", seen[-1]
        assert any(0 < j["done_bytes"] < j["total_bytes"] and j["rate_bps"] > 0 for j in seen)
        assert _models(http)["Toy-MLC"]["state"] == "installed"
        assert http.delete("/api/admin/models/Toy-MLC").status_code == 204
        assert _models(http)["Toy-MLC"]["state"] == "available"
        assert http.delete("/api/admin/models/Toy-MLC").status_code == 404


def test_cancel_leaves_a_partial_install(unit):
    with _admin(unit) as http:
        unit.source.rate_limit(300_000)
        try:
            assert http.post("/api/admin/models/Toy-MLC/install").status_code == 202
            time.sleep(1.0)
            assert http.delete("/api/admin/models/Toy-MLC/install").status_code == 202
            job = _wait_job(http, "Toy-MLC")
        finally:
            unit.source.rate_limit(None)
        assert job["state"] == "cancelled"
        model = _models(http)["Toy-MLC"]
        assert model["state"] == "partial" and 0 < model["done_bytes"] < model["size_bytes"]
        assert http.delete("/api/admin/models/Toy-MLC/install").status_code == 404


def test_unknown_models_and_bad_bodies(unit):
    with _admin(unit) as http:
        assert http.post("/api/admin/models/Nope/install").json()["error"]["code"] == "model_unknown"
        not_a_flag = http.post("/api/admin/models/Toy-MLC/install", json={"trust_mesh": "yes"})
        assert not_a_flag.status_code == 400 and not_a_flag.json()["error"]["param"] == "trust_mesh"
        assert http.put("/api/admin/default-model", json={"model": 5}).status_code == 400
        missing = http.put("/api/admin/default-model", json={"model": "Qwen2.5-0.5B-Instruct-q4f16_1-MLC"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_installed"
        in_use = http.delete(f"/api/admin/models/{DEFAULT_MODEL_ID}")
        assert in_use.status_code == 409 and in_use.json()["error"]["code"] == "model_in_use"


def test_an_mlc_model_cannot_serve_without_mlc_llm(unit):
    with _admin(unit) as http:
        http.post("/api/admin/models/Toy-MLC/install")
        assert _wait_job(http, "Toy-MLC")["state"] == "installed"
        refused = http.put("/api/admin/default-model", json={"model": "Toy-MLC"})
        assert refused.status_code == 409 and "MLC" in refused.json()["error"]["message"]
        assert http.get("/v1/models").json()["data"][0]["id"] == DEFAULT_MODEL_ID  # still serving


def test_switching_the_default_model_serves_it_now_and_after_a_restart(unit):
    with _admin(unit) as http:
        http.post("/api/admin/models/Smol-Copy/install")
        assert _wait_job(http, "Smol-Copy")["state"] == "installed"
        switched = http.put("/api/admin/default-model", json={"model": "Smol-Copy"})
        assert switched.status_code == 200 and switched.json() == {"default_model": "Smol-Copy"}
        assert http.get("/v1/models").json()["data"][0]["id"] == "Smol-Copy"
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "Smol-Copy",
                "stream": True,
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "Hi"}],
            },
        ) as r:
            assert read_sse(r)[-1] == "[DONE]"
    unit.restart()
    with unit.client() as http:
        assert http.get("/v1/models").json()["data"][0]["id"] == "Smol-Copy"


def _backdate(unit, conversation_id: str, days: int) -> None:
    # The unit's own database, opened beside it (SQLite in WAL mode takes a second writer).
    from datetime import timedelta

    from appliance.store.open_database import open_database
    from appliance.store.store_models import Conversation, now_utc

    db = open_database(unit.data_dir)
    try:
        when = now_utc() - timedelta(days=days)
        Conversation.update(updated_at=when).where(Conversation.id == conversation_id).execute()
    finally:
        db.close()


def test_the_owner_sets_how_long_chats_are_kept_and_older_ones_go_at_once(unit):
    with unit.client() as phone:
        old = phone.post("/api/conversations", json={"title": "old"}).json()
        recent = phone.post("/api/conversations", json={"title": "recent"}).json()
        _backdate(unit, old["id"], 10)
        _backdate(unit, recent["id"], 2)
        assert phone.get("/api/unit").json()["chat_retention_days"] == 14
        with _admin(unit) as http:
            assert http.get("/api/admin/chats").json()["retention_days"] == 14
            for bad in (0, 3651, "7", 2.5, True, None):
                refused = http.put("/api/admin/chats", json={"retention_days": bad})
                assert refused.status_code == 400 and refused.json()["error"]["param"] == "retention_days"
            assert http.put("/api/admin/chats", json={"retention_days": 7}).status_code == 200
            storage = http.get("/api/admin/chats").json()
            assert storage["retention_days"] == 7 and storage["free_bytes"] > 0
        assert [c["id"] for c in phone.get("/api/conversations").json()["conversations"]] == [recent["id"]]
        assert phone.get("/api/unit").json()["chat_retention_days"] == 7
        with unit.client() as stranger:  # not signed in
            assert stranger.put("/api/admin/chats", json={"retention_days": 1}).status_code == 401
        with _admin(unit) as http:
            http.put("/api/admin/chats", json={"retention_days": 14})


def test_changing_the_pin(unit):
    with _admin(unit) as http:
        assert http.put("/api/admin/pin", json={"current": "11111111", "new": "55555555"}).status_code == 403
        assert http.put("/api/admin/pin", json={"current": PIN, "new": "5555555"}).status_code == 400  # too short
        assert http.put("/api/admin/pin", json={"current": PIN, "new": "55556666"}).status_code == 204
        assert http.delete("/api/admin/session").status_code == 200
        assert http.get("/api/admin/models").status_code == 401
    with unit.client() as http:
        assert http.post("/api/admin/session", json={"pin": PIN}).status_code == 403
        assert http.post("/api/admin/session", json={"pin": "55556666"}).status_code == 200
        assert http.put("/api/admin/pin", json={"current": "55556666", "new": PIN}).status_code == 204
