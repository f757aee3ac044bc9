"""The URL of one model file on an HTTP source."""

from __future__ import annotations

from urllib.parse import quote

from appliance.library.library_types import ModelSource


def build_source_url(source: ModelSource, path: str) -> str:
    """hf: <base>/<repo>/resolve/<revision>/<path>; url: <base>[/<repo>]/<path>; peer: a mesh unit's
    <base>/mesh/models/<model id (repo)>/files/<path>."""
    quoted = quote(path)
    base = source.base.rstrip("/")
    if source.kind == "peer":
        return f"{base}/mesh/models/{quote(source.repo, safe='')}/files/{quoted}"
    if source.kind == "hf":
        return f"{base}/{source.repo}/resolve/{quote(source.revision, safe='')}/{quoted}"
    return f"{base}/{source.repo}/{quoted}" if source.repo else f"{base}/{quoted}"
