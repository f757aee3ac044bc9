"""Serve the built web app (webui/ → appliance/portal/webui_dist) from the unit itself: no CDN.

The build leaves a .br and a .gz beside every text file (webui/vite.config.js): a phone gets the smallest
one it accepts, with Content-Encoding, and hashed assets are cached for good. A phone on a busy unit's
Wi-Fi feels every kilobyte.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, Response, request, send_from_directory
from werkzeug.security import safe_join

WEBUI_DIST = Path(__file__).resolve().parent / "webui_dist"
_TYPES = {".webmanifest": "application/manifest+json", ".js": "text/javascript", ".svg": "image/svg+xml"}
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
_FOREVER = "public, max-age=31536000, immutable"  # hashed names: a new build has new names
_NOT_BUILT = (
    "<!doctype html><meta charset=utf-8><title>iplm</title>"
    "<p>The web app is not built. Run <code>npm ci &amp;&amp; npm run build</code> in <code>webui/</code>"
    " (the README's setup command does it). The API is up: <a href=/healthz>/healthz</a>.</p>"
)


def _guess_type(name: str) -> str | None:
    suffix = Path(name).suffix
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0]


def _send(folder: Path, name: str, cache_control: str) -> Response:
    """The file, or its precompressed twin in the best encoding the client accepts."""
    encoding = request.accept_encodings.best_match([coding for coding, _ in _ENCODINGS])
    suffix = dict(_ENCODINGS).get(encoding) if encoding else None
    packed = safe_join(str(folder), name + suffix) if suffix else None
    if encoding and suffix and packed is not None and Path(packed).is_file():
        response = send_from_directory(folder, name + suffix, mimetype=_guess_type(name))
        response.headers["Content-Encoding"] = encoding
    else:
        response = send_from_directory(folder, name, mimetype=_guess_type(name))
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = cache_control
    return response


def _send_page(dist: Path, name: str) -> Response:
    if not (dist / name).is_file():
        return Response(_NOT_BUILT, status=503, mimetype="text/html")
    return _send(dist, name, "no-cache")


def build_webui_blueprint(dist: Path = WEBUI_DIST) -> Blueprint:
    """/ (the chat), /admin (the admin page) and their files: hashed assets cached long, the rest revalidated."""
    webui = Blueprint("webui", __name__)

    @webui.get("/")
    def serve_index():
        return _send_page(dist, "index.html")

    @webui.get("/admin")
    def serve_admin():
        return _send_page(dist, "admin.html")

    @webui.get("/assets/<path:name>")
    def serve_asset(name: str):
        return _send(dist / "assets", name, _FOREVER)

    @webui.get("/<any('manifest.webmanifest', 'sw.js', 'favicon.ico', 'favicon.svg'):name>")
    def serve_root_file(name: str):
        response = _send(dist, name, "no-cache")
        if name == "sw.js":
            response.headers["Service-Worker-Allowed"] = "/"
        return response

    @webui.get("/icons/<path:name>")
    def serve_icon(name: str):
        return _send(dist / "icons", name, "public, max-age=86400")

    return webui
