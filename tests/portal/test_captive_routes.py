"""Captive-portal answers through Flask's test client: probes before and after a phone opens the portal, foreign
hosts, the unit's own routes, RFC 8908's API, and the bounded {ip: expiry} state."""

from __future__ import annotations

import json

import pytest

import appliance.portal.create_app as create_app_module
from appliance.engine.engine_types import Engine
from appliance.portal.build_webui_blueprint import build_webui_blueprint
from appliance.portal.captive_types import (
    CAPTIVE_API_PATH,
    CAPTIVE_JSON_TYPE,
    DEFAULT_OPEN_SECONDS,
    PROBE_RULES,
    ProbeRule,
)
from appliance.portal.create_app import create_app
from appliance.portal.match_captive_probe import match_captive_probe
from appliance.portal.portal_types import ChatDefaults, UnitInfo
from appliance.portal.start_captive_state import start_captive_state

PORTAL_URL = "http://198.18.0.1/"
PHONE = "198.18.0.23"
OTHER_PHONE = "198.18.0.24"
APPLE_BODY = b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
FIREFOX_CANONICAL = b'<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>'

# Written out by hand (not read from the table): the URLs the platforms fetch and the answers they accept.
KNOWN_PROBES = [
    # (platform, host, path, status, content type, body)
    ("android", "connectivitycheck.gstatic.com", "/generate_204", 204, None, b""),
    ("android", "www.google.com", "/gen_204", 204, None, b""),
    ("android", "play.googleapis.com", "/generate_204", 204, None, b""),
    ("android", "connectivitycheck.android.com", "/generate_204", 204, None, b""),
    ("android", "clients4.google.com", "/generate_204", 204, None, b""),
    ("chrome", "www.gstatic.com", "/generate_204", 204, None, b""),
    ("chromeos", "clients3.google.com", "/generate_204", 204, None, b""),
    ("xiaomi", "connect.rom.miui.com", "/generate_204", 204, None, b""),
    ("huawei", "connectivitycheck.platform.hicloud.com", "/generate_204", 204, None, b""),
    ("samsung", "connectivitycheck.samsung.com", "/generate_204", 204, None, b""),
    ("vivo", "wifi.vivo.com.cn", "/generate_204", 204, None, b""),
    ("apple", "captive.apple.com", "/hotspot-detect.html", 200, "text/html", APPLE_BODY),
    ("apple", "www.apple.com", "/library/test/success.html", 200, "text/html", APPLE_BODY),
    ("apple", "www.appleiphonecell.com", "/library/test/success.html", 200, "text/html", APPLE_BODY),
    ("windows", "www.msftconnecttest.com", "/connecttest.txt", 200, "text/plain", b"Microsoft Connect Test"),
    ("windows", "ipv6.msftconnecttest.com", "/connecttest.txt", 200, "text/plain", b"Microsoft Connect Test"),
    ("windows", "www.msftncsi.com", "/ncsi.txt", 200, "text/plain", b"Microsoft NCSI"),
    ("firefox", "detectportal.firefox.com", "/canonical.html", 200, "text/html", FIREFOX_CANONICAL),
    ("firefox", "detectportal.firefox.com", "/success.txt?ipv4", 200, "text/plain", b"success\n"),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fake_engine() -> Engine:
    return Engine(
        kind="fake", model_id="m", n_ctx=256, stream_chat=lambda request, cancel: iter(()), close=lambda: None
    )


@pytest.fixture(name="dist")
def _dist(tmp_path, monkeypatch):
    """A stand-in for the built web app, so that GET / is served whether or not `npm run build` ran."""
    (tmp_path / "index.html").write_text("<!doctype html><title>iplm</title>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("export {};")
    monkeypatch.setattr(create_app_module, "build_webui_blueprint", lambda: build_webui_blueprint(tmp_path))
    return tmp_path


@pytest.fixture(name="clock")
def _clock():
    return FakeClock()


@pytest.fixture(name="state")
def _state(clock):
    return start_captive_state(clock=clock)


@pytest.fixture(name="client")
def _client(dist, state):
    unit = UnitInfo(node_id="node-1", name="iplm-1a2b", defaults=ChatDefaults(), device={})
    app = create_app(_fake_engine, unit, portal_url=PORTAL_URL, captive_state=state)
    return app.test_client()


def _get(client, host, path, ip=PHONE, method="GET"):
    return client.open(path, method=method, headers={"Host": host}, environ_base={"REMOTE_ADDR": ip})


def _open_portal(client, ip=PHONE):
    # What the chat page's script does once it runs on the phone.
    response = _get(client, "198.18.0.1", "/captive-portal/open", ip, method="POST")
    assert response.status_code == 204
    return response


def _assert_sent_to_portal(response):
    assert response.status_code == 302
    assert response.headers["Location"] == PORTAL_URL
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "text/html"
    assert f'href="{PORTAL_URL}"'.encode() in response.data


def _assert_answer(response, status, content_type, body):
    assert response.status_code == status
    assert response.data == body
    if content_type is None:
        assert "Content-Type" not in response.headers
    else:
        assert response.headers["Content-Type"] == content_type
    assert "Location" not in response.headers


def _table_probes():
    """Every host × path of the table that has a success answer."""
    return [
        pytest.param(rule, host, path, id=f"{rule.platform}:{host}{path}")
        for rule in PROBE_RULES
        if rule.answer is not None
        for host in rule.hosts
        for path in rule.paths
    ]


# ---------- every probe: redirected before, exact success after, per client ----------


@pytest.mark.parametrize(
    "platform, host, path, status, content_type, body", KNOWN_PROBES, ids=[f"{p[0]}:{p[1]}{p[2]}" for p in KNOWN_PROBES]
)
def test_known_probe_redirects_until_the_portal_is_opened_then_succeeds(
    client, platform, host, path, status, content_type, body
):
    _assert_sent_to_portal(_get(client, host, path))
    _open_portal(client)
    after = _get(client, host, path)
    _assert_answer(after, status, content_type, body)
    assert after.headers["Cache-Control"] == "no-store"
    _assert_sent_to_portal(_get(client, host, path, ip=OTHER_PHONE))


@pytest.mark.parametrize("rule, host, path", _table_probes())
def test_every_table_probe_follows_its_rule(client, rule: ProbeRule, host, path):
    _assert_sent_to_portal(_get(client, host, path))
    _open_portal(client)
    _assert_answer(_get(client, host, path), rule.answer.status, rule.answer.content_type, rule.answer.body)
    _assert_sent_to_portal(_get(client, host, path, ip=OTHER_PHONE))


def test_every_platform_of_the_brief_is_in_the_table():
    platforms = {rule.platform for rule in PROBE_RULES}
    assert {"android", "chromeos", "apple", "windows", "windows-legacy", "firefox"} <= platforms


def test_other_paths_on_a_probe_host_are_probes_too(client):
    _assert_sent_to_portal(_get(client, "captive.apple.com", "/a1b2/c3d4/e5f6.html"))
    _assert_sent_to_portal(_get(client, "detectportal.firefox.com", "/"))
    _open_portal(client)
    _assert_answer(_get(client, "captive.apple.com", "/a1b2/c3d4/e5f6.html"), 200, "text/html", APPLE_BODY)
    _assert_answer(_get(client, "detectportal.firefox.com", "/"), 200, "text/html", FIREFOX_CANONICAL)
    _assert_answer(_get(client, "connectivitycheck.gstatic.com", "/"), 204, None, b"")


def test_probe_paths_count_on_any_host(client):
    # ROMs that point the probe at their own server still use the well-known paths.
    _assert_sent_to_portal(_get(client, "probe.example.net", "/generate_204"))
    _open_portal(client)
    _assert_answer(_get(client, "probe.example.net", "/generate_204"), 204, None, b"")
    _assert_answer(_get(client, "198.18.0.1", "/hotspot-detect.html"), 200, "text/html", APPLE_BODY)


def test_host_header_case_port_and_final_dot_are_ignored(client):
    _open_portal(client)
    _assert_answer(_get(client, "CAPTIVE.Apple.com.:80", "/hotspot-detect.html"), 200, "text/html", APPLE_BODY)


def test_head_probe_gets_the_status_without_a_body(client):
    before = _get(client, "connectivitycheck.gstatic.com", "/generate_204", method="HEAD")
    assert before.status_code == 302 and before.headers["Location"] == PORTAL_URL
    _open_portal(client)
    assert _get(client, "connectivitycheck.gstatic.com", "/generate_204", method="HEAD").status_code == 204


def test_windows_redirect_url_always_opens_the_portal(client):
    _assert_sent_to_portal(_get(client, "www.msftconnecttest.com", "/redirect"))
    _open_portal(client)
    _assert_sent_to_portal(_get(client, "www.msftconnecttest.com", "/redirect"))
    # Not a probe path elsewhere: on the unit's own host it is just a missing page.
    assert _get(client, "198.18.0.1", "/redirect").status_code == 404


def test_general_sites_are_not_probe_hosts(client):
    _open_portal(client)
    # Typing google.com in the browser shows the portal, not an empty success page.
    _assert_sent_to_portal(_get(client, "www.google.com", "/"))
    _assert_sent_to_portal(_get(client, "www.apple.com", "/"))


# ---------- when a client counts as having opened the portal ----------


def test_expiry_returns_the_client_to_the_portal(client, clock):
    _open_portal(client)
    clock.now += DEFAULT_OPEN_SECONDS - 1
    assert _get(client, "connectivitycheck.gstatic.com", "/generate_204").status_code == 204
    clock.now += 1
    _assert_sent_to_portal(_get(client, "connectivitycheck.gstatic.com", "/generate_204"))


def test_loading_the_portal_again_restarts_the_period(client, clock):
    _open_portal(client)
    clock.now += DEFAULT_OPEN_SECONDS - 10
    _open_portal(client)
    clock.now += 100
    assert _get(client, "captive.apple.com", "/hotspot-detect.html").status_code == 200


@pytest.mark.parametrize(
    "host, path",
    [
        ("198.18.0.1", "/admin"),
        ("198.18.0.1", "/api/unit"),
        ("198.18.0.1", "/healthz"),
        ("example.com", "/"),
        ("captive.apple.com", "/"),
    ],
)
def test_other_pages_do_not_open_the_portal(client, state, host, path):
    _get(client, host, path)
    assert state.read_entries() == {}
    _assert_sent_to_portal(_get(client, "connectivitycheck.gstatic.com", "/generate_204"))


def test_a_post_to_the_root_does_not_open_the_portal(client, state):
    assert _get(client, "198.18.0.1", "/", method="POST").status_code == 405
    assert state.read_entries() == {}


def test_unbuilt_app_does_not_open_the_portal(tmp_path, monkeypatch, state):
    # GET / answers 503 ("not built"): the phone saw no chat, so its probes keep showing the portal.
    monkeypatch.setattr(create_app_module, "build_webui_blueprint", lambda: build_webui_blueprint(tmp_path))
    unit = UnitInfo(node_id="node-1", name="iplm-1a2b", defaults=ChatDefaults(), device={})
    client = create_app(_fake_engine, unit, portal_url=PORTAL_URL, captive_state=state).test_client()
    assert _get(client, "198.18.0.1", "/").status_code == 503
    assert state.read_entries() == {}


def test_loading_the_page_alone_does_not_open_the_portal(client, state):
    # A phone's background HTTP clients follow redirects too: only the page's script running counts.
    assert _get(client, "198.18.0.1", "/").status_code == 200
    assert state.read_entries() == {}
    _assert_sent_to_portal(_get(client, "connectivitycheck.gstatic.com", "/generate_204"))


def test_portal_opened_by_the_mdns_name_counts(client, state):
    _get(client, "iplm-1a2b.local", "/captive-portal/open", method="POST")
    assert set(state.read_entries()) == {PHONE}


# ---------- foreign hosts and the unit's own routes ----------


@pytest.mark.parametrize("path", ["/", "/news/today.html", "/api/unit", "/v1/models", "/assets/app.js", "/healthz"])
def test_foreign_hosts_go_to_the_portal_before_and_after(client, path):
    _assert_sent_to_portal(_get(client, "example.com", path))
    _open_portal(client)
    _assert_sent_to_portal(_get(client, "example.com", path))


@pytest.mark.parametrize(
    "host",
    ["198.18.0.1", "198.18.0.1:80", "localhost", "127.0.0.1:8080", "iplm-1a2b.local", "10.42.0.7", "[fd00::7]:80"],
)
def test_the_units_own_routes_are_not_hijacked(client, host):
    unit = _get(client, host, "/api/unit")
    assert unit.status_code == 200 and unit.get_json()["name"] == "iplm-1a2b"
    assert _get(client, host, "/v1/models").get_json()["data"][0]["id"] == "m"
    assert _get(client, host, "/healthz").status_code == 200
    assert _get(client, host, "/assets/app.js").status_code == 200
    assert _get(client, host, "/api/nothing-here").status_code == 404
    assert _get(client, host, "/").status_code == 200


def test_without_a_portal_url_nothing_is_redirected(dist):
    unit = UnitInfo(node_id="node-1", name="iplm-1a2b", defaults=ChatDefaults(), device={})
    client = create_app(_fake_engine, unit).test_client()
    assert _get(client, "example.com", "/").status_code == 200
    assert _get(client, "connectivitycheck.gstatic.com", "/generate_204").status_code == 404
    assert _get(client, "198.18.0.1", CAPTIVE_API_PATH).status_code == 404


# ---------- RFC 8908 API ----------


def test_captive_api_before_and_after_for_this_client(client, clock):
    before = client.get(
        CAPTIVE_API_PATH,
        headers={"Host": "198.18.0.1", "Accept": CAPTIVE_JSON_TYPE},
        environ_base={"REMOTE_ADDR": PHONE},
    )
    assert before.status_code == 200
    assert before.headers["Content-Type"] == CAPTIVE_JSON_TYPE
    assert before.headers["Cache-Control"] == "private"
    assert json.loads(before.data) == {"captive": True, "user-portal-url": PORTAL_URL}

    _open_portal(client)
    clock.now += 60
    after = _get(client, "198.18.0.1", CAPTIVE_API_PATH)
    assert after.headers["Content-Type"] == CAPTIVE_JSON_TYPE
    assert json.loads(after.data) == {
        "captive": False,
        "user-portal-url": PORTAL_URL,
        "seconds-remaining": DEFAULT_OPEN_SECONDS - 60,
        "can-extend-session": True,
    }
    assert json.loads(_get(client, "198.18.0.1", CAPTIVE_API_PATH, ip=OTHER_PHONE).data)["captive"] is True

    clock.now += DEFAULT_OPEN_SECONDS
    assert json.loads(_get(client, "198.18.0.1", CAPTIVE_API_PATH).data) == {
        "captive": True,
        "user-portal-url": PORTAL_URL,
    }


def test_captive_api_answers_on_any_host(client):
    # The page asks it from whatever origin it was loaded from; it is never itself redirected.
    response = _get(client, "example.com", CAPTIVE_API_PATH)
    assert response.status_code == 200 and response.headers["Content-Type"] == CAPTIVE_JSON_TYPE


# ---------- the state: only {ip: expiry}, bounded ----------


def test_state_holds_only_ip_to_expiry(state, clock):
    state.mark_open(PHONE)
    entries = state.read_entries()
    assert entries == {PHONE: clock.now + DEFAULT_OPEN_SECONDS}
    assert all(isinstance(ip, str) and isinstance(expiry, float) for ip, expiry in entries.items())


def test_state_purges_expired_entries_on_access(clock):
    state = start_captive_state(open_seconds=10, clock=clock)
    state.mark_open("10.0.0.1")
    clock.now += 5
    state.mark_open("10.0.0.2")
    clock.now += 5
    assert state.read_entries() == {"10.0.0.2": clock.now + 5}
    assert state.seconds_remaining("10.0.0.1") is None
    assert state.seconds_remaining("10.0.0.2") == 5


def test_state_is_bounded_and_evicts_the_oldest(clock):
    state = start_captive_state(max_clients=3, clock=clock)
    for index in range(5):
        clock.now += 1
        state.mark_open(f"10.0.0.{index}")
    assert list(state.read_entries()) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    clock.now += 1
    state.mark_open("10.0.0.2")  # re-opened: now the newest
    state.mark_open("10.0.0.9")
    assert list(state.read_entries()) == ["10.0.0.4", "10.0.0.2", "10.0.0.9"]


def test_state_stays_bounded_through_many_clients():
    bounded = start_captive_state(max_clients=4096)
    for index in range(5000):
        bounded.mark_open(f"10.{index // 65536}.{index // 256 % 256}.{index % 256}")
    assert len(bounded.read_entries()) == 4096


def test_state_ignores_a_missing_address(state):
    state.mark_open(None)
    state.mark_open("")
    assert state.read_entries() == {}
    assert state.seconds_remaining(None) is None


@pytest.mark.parametrize("kwargs", [{"open_seconds": 0}, {"max_clients": 0}])
def test_state_rejects_non_positive_limits(kwargs):
    with pytest.raises(ValueError):
        start_captive_state(**kwargs)


# ---------- the table and its matcher ----------


def test_probe_table_is_well_formed():
    for rule in PROBE_RULES:
        assert rule.hosts and rule.paths
        assert all(host == host.lower().strip(".") and ":" not in host for host in rule.hosts)
        assert all(path.startswith("/") and "?" not in path for path in rule.paths)
        if rule.answer is not None:
            assert rule.answer.status in (200, 204)
            assert (rule.answer.status == 204) == (rule.answer.content_type is None and rule.answer.body == b"")


@pytest.mark.parametrize(
    "host, path, platform",
    [
        ("connectivitycheck.gstatic.com", "/generate_204", "android"),
        ("www.google.com", "/gen_204", "android"),
        ("www.msftconnecttest.com", "/", "windows"),
        ("www.msftconnecttest.com", "/redirect", "windows-open-portal"),
        ("detectportal.firefox.com", "/success.txt", "firefox-connectivity"),
        ("198.18.0.1", "/ncsi.txt", "windows-legacy"),
    ],
)
def test_match_captive_probe(host, path, platform):
    assert match_captive_probe(host, path).platform == platform


@pytest.mark.parametrize(
    "host, path",
    [("www.google.com", "/search"), ("example.com", "/redirect"), ("198.18.0.1", "/"), ("198.18.0.1", "/api/unit")],
)
def test_match_captive_probe_leaves_other_requests(host, path):
    assert match_captive_probe(host, path) is None
