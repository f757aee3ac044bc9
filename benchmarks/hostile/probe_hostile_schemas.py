"""The schemas group: response_format schemas made to exhaust the grammar compiler (400 invalid_schema each)."""

from __future__ import annotations

import httpx

from benchmarks.hostile.hostile_types import HostileUnit, Keepsake, Probe
from benchmarks.hostile.send_hostile_request import send_hostile_request
from tests.portal.build_schema_bomb import build_schema_bomb

_DEVICE = 13
_REFUSED = (400, 413)  # invalid_schema; a schema over the 1 MiB body limit never gets that far


_BOMBS = {
    "minItems 10^9": {"type": "array", "items": {"type": "string"}, "minItems": 10**9},
    "maxItems 10^9 of objects": {"type": "array", "items": {"type": "object"}, "minItems": 2, "maxItems": 10**9},
    "minLength 10^9": {"type": "string", "minLength": 10**9},
    "minProperties 10^6": {"type": "object", "minProperties": 10**6},
    "300 levels deep": build_schema_bomb("nest", 300),
    "$ref to itself": {"$ref": "#"},
    "$ref loop": {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    "$ref fan-out 8^8": build_schema_bomb("fan-out", 8, 8),
    "$ref outside the schema": {"$ref": "http://127.0.0.1/evil.json"},
    "enum of 100000": {"enum": [f"value-{i}" for i in range(100_000)]},
    "const of 900 KB": {"const": "x" * 900_000},
    "pattern a{1000000}": {"type": "string", "pattern": "^a{1000000}$"},
    "pattern that does not compile": {"type": "string", "pattern": "([a-"},
    "pattern (a+)+ repeated": {"type": "string", "pattern": "^((a{0,50}){0,50}){0,50}$"},
    "10000 properties": {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(10_000)}},
    "schema not an object": "object",
}


def probe_hostile_schemas(unit: HostileUnit, keepsake: Keepsake) -> list[Probe]:
    """Each bomb as json_schema (and the first few as a bare schema in json_object): a 400, no engine work."""
    probes = []
    with httpx.Client(
        base_url=unit.url, timeout=20, transport=httpx.HTTPTransport(local_address=f"127.0.0.{_DEVICE}")
    ) as http:
        for label, schema in _BOMBS.items():
            body = {
                "messages": [{"role": "user", "content": "Answer as JSON."}],
                "max_tokens": 4,
                "response_format": {"type": "json_schema", "json_schema": {"name": "bomb", "schema": schema}},
            }
            probes.append(send_hostile_request(http, label, "POST", "/v1/chat/completions", json=body, expect=_REFUSED))
            body["response_format"] = {"type": "json_object", "schema": schema}
            probes.append(
                send_hostile_request(
                    http, f"{label} (json_object)", "POST", "/v1/chat/completions", json=body, expect=_REFUSED
                )
            )
    return probes
