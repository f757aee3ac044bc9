"""What phones can make the unit store: a budget per device address, a full disk, "delete all my chats".

The portal app with an engine that answers at once (the chat path's storage is under test, not the
model); disks that fill are real tmpfs mounts (the suite runs as root).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import appliance.portal.create_app as create_app_module
from appliance.engine.engine_types import ChatEvent, Engine
from appliance.portal.build_webui_blueprint import build_webui_blueprint
from appliance.portal.create_app import create_app
from appliance.portal.identify_client import COOKIE_NAME
from appliance.portal.portal_types import ChatDefaults, UnitInfo
from appliance.portal.start_storage_budgets import start_storage_budgets
from appliance.portal.storage_budget_types import BudgetLimits
from appliance.store.open_database import open_database
from appliance.store.store_models import database
from appliance.store.store_types import CHATS_STOP_BELOW_BYTES, MIB

PHONE, OTHER_PHONE = "198.18.0.20", "198.18.0.21"


def _engine(before_done=lambda: None) -> Engine:
    def stream_chat(request, cancel):
        yield ChatEvent("start", prompt_tokens=3)
        yield ChatEvent("delta", text="a reply")
        before_done()
        yield ChatEvent("done", completion_tokens=2, finish_reason="stop")

    return Engine(kind="fake", model_id="m", n_ctx=4096, stream_chat=stream_chat, close=lambda: None)


@pytest.fixture(autouse=True)
def _no_built_webui(tmp_path, monkeypatch):
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<!doctype html><title>iplm</title>")
    monkeypatch.setattr(create_app_module, "build_webui_blueprint", lambda: build_webui_blueprint(tmp_path / "dist"))


def _app(engine: Engine, limits: BudgetLimits | None = None):
    unit = UnitInfo(node_id="node-1", name="iplm-1a2b", defaults=ChatDefaults(), device={})
    return create_app(lambda: engine, unit, storage_budgets=start_storage_budgets(limits))


def _phone(app, address=PHONE):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _send(client, conversation_id, content):
    response = client.post(f"/api/conversations/{conversation_id}/messages", json={"content": content})
    return response, response.get_data(as_text=True)


@pytest.fixture
def disk(tmp_path):
    """A small real file system, mounted for the test: the unit's data disk."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run the suite as root (as scripts/dev and CI do)")

    def mount(size: int) -> Path:
        path = tmp_path / "disk"
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    mounted: list[Path] = []
    yield mount
    database.close()
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_rotating_cookies_does_not_buy_a_device_more_conversations(tmp_path):
    open_database(tmp_path / "data")
    app = _app(_engine(), BudgetLimits(conversations_per_day=3))
    statuses = []
    for _ in range(5):
        phone = _phone(app)  # a fresh test client: no cookie, so a fresh one each time
        statuses.append(phone.post("/api/conversations", json={}).status_code)
    assert statuses == [201, 201, 201, 429, 429]
    refused = _phone(app).post("/api/conversations", json={})
    assert refused.json["error"]["code"] == "storage_quota" and int(refused.headers["Retry-After"]) > 3600
    assert _phone(app, OTHER_PHONE).post("/api/conversations", json={}).status_code == 201


def test_a_device_over_its_bytes_is_refused_before_anything_is_generated_or_stored(tmp_path):
    open_database(tmp_path / "data")
    app = _app(_engine(), BudgetLimits(bytes_per_day=1000))
    phone = _phone(app)
    conversation = phone.post("/api/conversations", json={}).json
    response, body = _send(phone, conversation["id"], "x" * 600)
    assert response.status_code == 200 and '"type": "done"' in body
    refused, _ = _send(phone, conversation["id"], "y" * 500)  # 600 + the reply + 500 > 1000
    assert refused.status_code == 429 and refused.json["error"]["code"] == "storage_quota"
    messages = phone.get(f"/api/conversations/{conversation['id']}").json["messages"]
    assert [m["content"][:1] for m in messages] == ["x", "a"]


def test_delete_all_my_chats_leaves_other_phones_alone(tmp_path):
    open_database(tmp_path / "data")
    app = _app(_engine())
    mine, theirs = _phone(app), _phone(app, OTHER_PHONE)
    for _ in range(3):
        mine.post("/api/conversations", json={})
    kept = theirs.post("/api/conversations", json={}).json
    deleted = mine.delete("/api/conversations")
    assert deleted.status_code == 200 and deleted.json == {"deleted": 3}
    assert mine.get("/api/conversations").json == {"conversations": []}
    assert [c["id"] for c in theirs.get("/api/conversations").json["conversations"]] == [kept["id"]]


def test_a_nearly_full_disk_refuses_new_chats_up_front(disk):
    open_database(disk(CHATS_STOP_BELOW_BYTES // 2) / "data")
    app = _app(_engine())
    refused = _phone(app).post("/api/conversations", json={})
    assert refused.status_code == 507 and refused.json["error"]["code"] == "storage_full"
    assert _phone(app).get("/healthz").status_code == 200


def test_a_disk_that_fills_during_a_reply_gives_a_clear_error_and_the_unit_goes_on(disk):
    mounted = disk(CHATS_STOP_BELOW_BYTES + 16 * MIB)
    open_database(mounted / "data")
    filler, fills = mounted / "filler", []

    def fill_the_disk():  # something else on the unit takes every byte while the first reply streams
        if filler.exists() or fills:
            return
        fills.append(1)
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * MIB)
            except OSError:
                pass

    app = _app(_engine(before_done=fill_the_disk))
    phone = _phone(app)
    conversation = phone.post("/api/conversations", json={}).json
    response, body = _send(phone, conversation["id"], "hello")
    assert response.status_code == 200
    assert '"type": "delta"' in body and '"code": "not_saved"' in body and '"type": "done"' not in body
    filler.unlink()  # space again: the unit carries on, the conversation intact
    assert phone.get(f"/api/conversations/{conversation['id']}").status_code == 200
    response, body = _send(phone, conversation["id"], "again")
    assert response.status_code == 200 and '"type": "done"' in body


def test_the_cookie_is_what_deletes(tmp_path):
    # Another phone at the same address (a shared NAT, a reused lease) deletes only its own chats.
    open_database(tmp_path / "data")
    app = _app(_engine())
    first, second = _phone(app), _phone(app)
    first.post("/api/conversations", json={})
    second.post("/api/conversations", json={})
    assert first.get_cookie(COOKIE_NAME).value != second.get_cookie(COOKIE_NAME).value
    assert first.delete("/api/conversations").json == {"deleted": 1}
    assert len(second.get("/api/conversations").json["conversations"]) == 1
