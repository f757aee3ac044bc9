"""Small holes a hostile phone or page could use: broken Unicode, forms from other sites."""

from __future__ import annotations

import pytest

from tests.portal.test_admin_signin import PIN, _app, _client, _sign_in, data_dir  # noqa: F401 (fixture)


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/conversations", b'{"title": "hi \\ud800"}'),
        ("/api/admin/session", b'{"pin": "\\udfff"}'),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\ud800"}]}'),
    ],
)
def test_a_lone_surrogate_is_a_clear_400_and_nothing_is_stored(data_dir, path, body):  # noqa: F811
    client = _client(_app(data_dir))
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert (
        response.get_json()["error"]["code"] == "invalid_json" and "Unicode" in response.get_json()["error"]["message"]
    )
    assert client.get("/api/conversations").get_json()["conversations"] == []


def test_a_cross_site_form_cannot_sign_in_or_act(data_dir):  # noqa: F811
    app = _app(data_dir)
    attacker = _client(app)
    form = attacker.post("/api/admin/session", data=f'{{"pin": "{PIN}"}}', content_type="text/plain")
    assert form.status_code == 415 and "iplm_admin" not in form.headers.get("Set-Cookie", "")
    other_site = attacker.post("/api/admin/session", json={"pin": PIN}, headers={"Origin": "http://evil.example"})
    assert other_site.status_code == 403 and other_site.get_json()["error"]["code"] == "cross_origin"
    admin = _client(app)
    assert _sign_in(admin, PIN).status_code == 200
    # A page elsewhere that the signed-in admin visits tries to change the default model through the browser.
    forged = admin.put("/api/admin/default-model", json={"model": "x"}, headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403
    as_form = admin.put(
        "/api/admin/default-model", data='{"model": "x"}', content_type="application/x-www-form-urlencoded"
    )
    assert as_form.status_code == 415
    own_page = admin.delete("/api/admin/session", headers={"Origin": "http://localhost"})
    assert own_page.status_code == 200  # the unit's own page (the test client's host is localhost)
