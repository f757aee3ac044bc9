"""The web app's files: the smallest encoding the client accepts, hashed assets cached for good."""

import gzip

import pytest
from flask import Flask

from appliance.portal.build_webui_blueprint import build_webui_blueprint

SCRIPT = b"export const x = 1;\n" * 200


@pytest.fixture
def client(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>iplm</title>")
    (tmp_path / "assets" / "main-abc123.js").write_bytes(SCRIPT)
    (tmp_path / "assets" / "main-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (tmp_path / "assets" / "main-abc123.js.br").write_bytes(b"brotli bytes")
    (tmp_path / "assets" / "tiny.css").write_text("a{}")  # nothing precompressed: sent as is
    app = Flask("test")
    app.register_blueprint(build_webui_blueprint(tmp_path))
    return app.test_client()


def test_each_client_gets_the_best_encoding_it_accepts(client):
    plain = client.get("/assets/main-abc123.js", headers={"Accept-Encoding": "identity"})
    assert plain.data == SCRIPT and "Content-Encoding" not in plain.headers
    gz = client.get("/assets/main-abc123.js", headers={"Accept-Encoding": "gzip, deflate"})
    assert gz.headers["Content-Encoding"] == "gzip" and gzip.decompress(gz.data) == SCRIPT
    assert gz.mimetype == "text/javascript" and gz.headers["Vary"] == "Accept-Encoding"
    br = client.get("/assets/main-abc123.js", headers={"Accept-Encoding": "gzip, br"})
    assert br.headers["Content-Encoding"] == "br" and br.data == b"brotli bytes"
    refused = client.get("/assets/main-abc123.js", headers={"Accept-Encoding": "br;q=0, gzip;q=0"})
    assert refused.data == SCRIPT
    assert client.get("/assets/tiny.css", headers={"Accept-Encoding": "gzip"}).data == b"a{}"


def test_hashed_assets_are_cached_for_good_and_pages_are_revalidated(client):
    asset = client.get("/assets/main-abc123.js", headers={"Accept-Encoding": "gzip"})
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.headers["Cache-Control"] == "no-cache" and page.mimetype == "text/html"
    again = client.get(
        "/assets/main-abc123.js", headers={"Accept-Encoding": "gzip", "If-None-Match": asset.headers["ETag"]}
    )
    assert again.status_code == 304


def test_paths_outside_the_app_are_not_served(client):
    assert client.get("/assets/../index.html").status_code in (404, 308)
    assert client.get("/assets/%2e%2e/index.html").status_code == 404
    assert client.get("/assets/nope.js", headers={"Accept-Encoding": "gzip"}).status_code == 404
