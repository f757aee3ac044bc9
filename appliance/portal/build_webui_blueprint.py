"""Serve the built web app (webui/ → appliance/portal/webui_dist) from the unit itself: no CDN."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

WEBUI_DIST = Path(__file__).resolve().parent / "webui_dist"
_ROOT_FILE_TYPES = {"manifest.webmanifest": "application/manifest+json", "sw.js": "text/javascript"}
_NOT_BUILT = (
    "<!doctype html><meta charset=utf-8><title>iplm</title>"
    "<p>The web app is not built. Run <code>npm ci &amp;&amp; npm run build</code> in <code>webui/</code>"
    " (the README's setup command does it). The API is up: <a href=/healthz>/healthz</a>.</p>"
)


def build_webui_blueprint(dist: Path = WEBUI_DIST) -> Blueprint:
    """/ (the chat), /admin (the admin page) and their files: hashed assets cached long, the rest revalidated."""
    webui = Blueprint("webui", __name__)

    @webui.get("/")
    def serve_index():
        if not (dist / "index.html").is_file():
            return Response(_NOT_BUILT, status=503, mimetype="text/html")
        response = send_from_directory(dist, "index.html", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @webui.get("/admin")
    def serve_admin():
        if not (dist / "admin.html").is_file():
            return Response(_NOT_BUILT, status=503, mimetype="text/html")
        response = send_from_directory(dist, "admin.html", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @webui.get("/assets/<path:name>")
    def serve_asset(name: str):
        return send_from_directory(dist / "assets", name, max_age=365 * 24 * 3600)

    @webui.get("/<any('manifest.webmanifest', 'sw.js', 'favicon.ico', 'favicon.svg'):name>")
    def serve_root_file(name: str):
        response = send_from_directory(dist, name, max_age=0, mimetype=_ROOT_FILE_TYPES.get(name))
        if name == "sw.js":
            response.headers["Service-Worker-Allowed"] = "/"
        return response

    @webui.get("/icons/<path:name>")
    def serve_icon(name: str):
        return send_from_directory(dist / "icons", name, max_age=24 * 3600)

    return webui
