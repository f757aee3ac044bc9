"""Admin sign-in against guessing, over HTTP: by address, unit-wide, and not from the phones' Wi-Fi at all."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from appliance.admin.admin_session_types import FREE_TRIES, LOCK_SETTING, UNIT_LOCK_AFTER
from appliance.admin.admin_types import AdminHooks, InstallJobs
from appliance.admin.ensure_admin_pin import ensure_admin_pin
from appliance.admin.install_job_types import InstallJob
from appliance.admin.set_admin_pin import set_admin_pin
from appliance.portal.create_app import create_app
from appliance.portal.portal_types import ChatDefaults, UnitInfo
from appliance.store.open_database import open_database
from appliance.store.read_setting import read_setting
from tests.portal.test_captive_routes import _fake_engine

PIN = "86420975"
OWNER = "10.1.0.2"  # Ethernet or the mesh side
PHONES = ip_network("198.18.0.0/24")


@pytest.fixture
def data_dir(tmp_path):
    database = open_database(tmp_path)
    set_admin_pin(PIN)
    yield tmp_path
    database.close()


def _app(data_dir, **hooks):
    jobs = InstallJobs(start=InstallJob, cancel=lambda model: None, describe=dict)
    admin = AdminHooks(
        data_dir=data_dir,
        node_id="00000000000000ad",
        memory_bytes=0,
        jobs=jobs,
        switch_model=lambda model: None,
        **hooks,
    )
    return create_app(_fake_engine, UnitInfo(node_id="n", name="iplm-00ad", defaults=ChatDefaults(), device={}), admin)


def _client(app, address=OWNER):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address  # a phone on the Wi-Fi, or the owner's laptop
    return client


def _sign_in(client, pin):
    return client.post("/api/admin/session", json={"pin": pin})


def test_wrong_pins_without_cookies_are_slowed_by_address(data_dir):
    app = _app(data_dir)
    codes = []
    for _ in range(FREE_TRIES + 2):
        client = _client(app, "10.1.0.66")  # a fresh client, so a fresh cookie, every time
        codes.append(_sign_in(client, "00000000").status_code)
    assert codes == [403] * FREE_TRIES + [429, 429]
    waiting = _sign_in(_client(app, "10.1.0.66"), PIN)
    assert waiting.status_code == 429 and int(waiting.headers["Retry-After"]) >= 1  # even the right PIN
    assert _sign_in(_client(app, OWNER), PIN).status_code == 200  # another address is not held up


def test_enough_wrong_pins_unit_wide_lock_sign_in_until_reset_pin(data_dir):
    app = _app(data_dir)
    statuses = set()
    for index in range(UNIT_LOCK_AFTER):
        statuses.add(_sign_in(_client(app, f"10.2.{index // 200}.{index % 200}"), "00000000").status_code)
    locked = _sign_in(_client(app, OWNER), PIN)
    assert statuses == {403, 423} and locked.status_code == 423
    assert "iplm admin reset-pin" in locked.get_json()["error"]["message"]
    assert read_setting(LOCK_SETTING) is True
    # A restart does not unlock: the lock is kept in the unit's settings.
    assert _sign_in(_client(_app(data_dir), OWNER), PIN).status_code == 423
    new_pin = ensure_admin_pin(reset=True)  # what `iplm admin reset-pin` does
    assert _sign_in(_client(app, OWNER), new_pin).status_code == 200
    assert read_setting(LOCK_SETTING) is False


def test_changing_the_pin_ends_the_other_sessions(data_dir):
    app = _app(data_dir)
    mine, theirs = _client(app), _client(app, "10.1.0.3")
    assert _sign_in(mine, PIN).status_code == 200 and _sign_in(theirs, PIN).status_code == 200
    assert mine.put("/api/admin/pin", json={"current": PIN, "new": "13572468"}).status_code == 204
    assert mine.get("/api/admin/models").status_code == 200
    assert theirs.get("/api/admin/models").status_code == 401


def test_admin_is_out_of_the_phones_reach_unless_the_owner_allows_it(data_dir):
    app = _app(data_dir, phone_networks=(PHONES,))
    phone = _client(app, "198.18.0.23")
    for method, path in [
        ("GET", "/api/admin/session"),
        ("POST", "/api/admin/session"),
        ("GET", "/api/admin/models"),
        ("GET", "/api/admin/mesh"),
        ("PUT", "/api/admin/pin"),
    ]:
        response = phone.open(path, method=method, json={"pin": PIN})
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "admin_not_here", path
    owner = _client(app, OWNER)
    assert _sign_in(owner, PIN).status_code == 200
    assert owner.get("/api/admin/models").status_code == 200
    allowed = _app(data_dir, phone_networks=(PHONES,), admin_from_phones=True)
    assert _sign_in(_client(allowed, "198.18.0.23"), PIN).status_code == 200
    assert phone.get("/api/unit").status_code == 200  # the chat side is the phones' as ever
