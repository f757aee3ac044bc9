"""Read the request body as JSON, with errors a client can act on."""
from __future__ import annotations

import json

from flask import request

from appliance.portal.portal_types import ApiError


def read_json_body():
    """Return the parsed JSON body of the current request, or raise a 400 ApiError saying why not."""
    raw = request.get_data(cache=False)
    if not raw:
        raise ApiError(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}.", code="invalid_json") from exc
