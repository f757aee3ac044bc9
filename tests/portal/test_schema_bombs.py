"""response_format schema bombs sent to a real `iplm serve` with the real default model: each is a 400
invalid_schema naming the keyword, no engine ever sees one, and the unit answers normal chats afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.portal.build_schema_bomb import build_schema_bomb

pytestmark = pytest.mark.engine

SCHEMA = "response_format.json_schema.schema"
ASK = [{"role": "user", "content": "Give me the answer as JSON."}]
# 144 bytes of JSON that make llama.cpp's converter ask for about 18 GB.
BOMB_144 = {
    "title": "answers",
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string"}, "minItems": 1_000_000_000}},
    "required": ["items"],
}


BOMBS = [
    pytest.param(BOMB_144, f"{SCHEMA}.properties.items.minItems", id="minItems 10^9, 144 bytes"),
    pytest.param(
        {"type": "array", "items": {"type": "string"}, "minItems": 10**7}, f"{SCHEMA}.minItems", id="minItems 10^7"
    ),
    pytest.param(build_schema_bomb("nest", 40), SCHEMA + ".items" * 16, id="40 levels deep"),
    pytest.param(build_schema_bomb("nest", 200), SCHEMA + ".items" * 64, id="200 levels deep"),
    pytest.param(
        {"type": "object", "properties": {"color": {"enum": [f"color-{i}" for i in range(5000)]}}},
        SCHEMA,
        id="enum of 5000 (too many values)",
    ),
    pytest.param(
        {"type": "object", "properties": {"color": {"enum": [f"c{i}" for i in range(1000)]}}},
        f"{SCHEMA}.properties.color.enum",
        id="enum of 1000",
    ),
    pytest.param({"type": "string", "pattern": "^a{1000000}$"}, f"{SCHEMA}.pattern", id="pattern a{1000000}"),
    pytest.param(
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        f"{SCHEMA}.$defs.b.$ref",
        id="$ref loop",
    ),
    pytest.param(build_schema_bomb("fan-out", 8, 8), f"{SCHEMA}.$defs.d1.anyOf[2]", id="$ref fan-out"),
    # What llama.cpp's own grammar parser refuses: llama-cpp-python then samples without a sampler (SIGSEGV).
    pytest.param({"type": "string", "maxLength": 1024}, f"{SCHEMA}.maxLength", id="1024 optional repeats"),
    pytest.param({"type": "string", "pattern": "^\\d+$"}, f"{SCHEMA}.pattern", id="escape the parser lacks"),
    # The converter never returns from this one.
    pytest.param({"type": "string", "pattern": "^a]$"}, f"{SCHEMA}.pattern", id="stray bracket"),
    # A quote in a name ends the converter's literal and writes the rest as grammar.
    pytest.param(
        {"type": "object", "properties": {'a" [0-9]{1999} #': {"type": "string"}}},
        f'{SCHEMA}.properties["a\\" [0-9]{{1999}} #"]',
        id="grammar injection",
    ),
]


def _engine_workers(parent_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == parent_pid and b"run_engine_worker" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def worker(live_unit) -> int:
    """The unit's one engine worker, as it was before any bomb."""
    [pid] = _engine_workers(live_unit.process.pid)
    return pid


def test_the_144_byte_bomb_is_144_bytes():
    assert len(json.dumps(BOMB_144, separators=(",", ":"))) == 144


@pytest.mark.parametrize(("schema", "param"), BOMBS)
def test_a_schema_bomb_is_a_400_naming_the_keyword(live_unit, worker, schema, param):
    body = {
        "messages": ASK,
        "max_tokens": 8,
        "response_format": {"type": "json_schema", "json_schema": {"name": "bomb", "schema": schema}},
    }
    with live_unit.client() as http:
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"], error["type"]) == ("invalid_schema", param, "invalid_request_error")
        assert error["message"].startswith(f"{param}: ")
        assert http.get("/healthz").status_code == 200
    assert _engine_workers(live_unit.process.pid) == [worker]  # no engine saw it: the worker never died


def test_json_object_schemas_are_checked_too(live_unit):
    body = {"messages": ASK, "response_format": {"type": "json_object", "schema": BOMB_144}}
    with live_unit.client() as http:
        error = http.post("/v1/chat/completions", json=body).json()["error"]
    assert (error["code"], error["param"]) == ("invalid_schema", "response_format.schema.properties.items.minItems")


def test_after_the_bombs_the_unit_answers_chats_and_schemas(live_unit, worker):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "country_code": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "size": {"enum": ["small", "medium", "big"]},
        },
        "required": ["city", "country_code", "size"],
    }
    with live_unit.client() as http:
        plain = http.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
        )
        assert plain.status_code == 200, plain.text
        assert plain.json()["choices"][0]["message"]["content"].strip()
        shaped = http.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "Name a big city, its country code and its size as JSON."}],
                "max_tokens": 80,
                "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
            },
        )
    assert shaped.status_code == 200, shaped.text
    answer = json.loads(shaped.json()["choices"][0]["message"]["content"])
    assert isinstance(answer["city"], str) and len(answer["city"]) <= 40
    assert len(answer["country_code"]) == 2 and answer["country_code"].isupper()
    assert answer["size"] in ("small", "medium", "big")
    assert _engine_workers(live_unit.process.pid) == [worker]


def test_the_llama_cpp_worker_is_the_kernels_first_choice_and_bounded(live_unit, worker):
    assert int(Path(f"/proc/{worker}/oom_score_adj").read_text()) == 1000
    assert int(Path(f"/proc/{live_unit.process.pid}/oom_score_adj").read_text()) < 1000
    limits = Path(f"/proc/{worker}/limits").read_text().splitlines()
    soft, hard = next(line for line in limits if line.startswith("Max data size")).split()[3:5]
    status = Path(f"/proc/{worker}/status").read_text().splitlines()
    vm_data = int(next(line for line in status if line.startswith("VmData:")).split()[1]) << 10
    # What loading the model took (weights, KV cache, buffers) plus room for a request; far below a bomb.
    assert soft == hard and vm_data < int(soft) < vm_data + (4 << 30)
