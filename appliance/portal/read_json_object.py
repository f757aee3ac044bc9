"""Read the request body as a JSON object, with errors a client can act on."""

from __future__ import annotations

import json

from flask import request

from appliance.portal.portal_types import ApiError


def read_json_object(*, allow_empty: bool = False) -> dict:
    """The JSON object the request carries; {} for no body at all when `allow_empty`; else a 400 ApiError."""
    raw = request.get_data(cache=True)
    if not raw:
        if allow_empty:
            return {}
        raise ApiError(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}.", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        # JSON's \ud800 escapes can make text that is no Unicode at all (a lone surrogate); nothing can store it.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(
            400, "The request body holds text that is not valid Unicode (a lone surrogate).", code="invalid_json"
        ) from exc
    return body
