"""One device cannot hold the unit: chats per address, a bounded queue, and the rest of the unit answering.

A real `iplm serve` with one worker decoding one chat at a time, one chat per address and two places in the
queue. Devices are loopback addresses (127.0.0.2, .3, ...): the limits key on the address, so a fresh
cookie does not help.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.install_model import install_model
from appliance.library.library_types import ModelSource
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.store_models import database
from tests.conftest import start_live_unit
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

pytestmark = pytest.mark.engine

KEY = create_mesh_key()
# At temperature 0 this runs to max_tokens, many seconds: it holds the worker while the test looks around.
LONG_CHAT = {
    "messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}],
    "max_tokens": 1900,
    "temperature": 0,
    "stream": True,
}
SHORT_CHAT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    """A unit holding a model its peers may fetch, limited to one chat per device and two queued."""
    root = tmp_path_factory.mktemp("source")
    toy = make_mlc_model_dir(root / "org/Toy")
    source = start_model_source(root)
    data_dir = tmp_path_factory.mktemp("unit")
    open_database(data_dir)
    add_model(
        "Toy", build_manifest(toy, piece_size=64 * 1024), ModelSource(kind="hf", base=source.base_url, repo="org/Toy")
    )
    install_model("Toy", data_dir=data_dir, node_id=load_node_id(data_dir))
    store_mesh_key(data_dir, KEY)
    database.close()
    source.stop()
    live = start_live_unit(
        data_dir, "--workers", "1", "--sequences", "1", "--chats-per-device", "1", "--max-queued-chats", "2"
    )
    yield live
    live.stop()


def _device(unit, number: int) -> httpx.Client:
    """A client from 127.0.0.<number>: another device on the unit's network."""
    return unit.client(device=number, timeout=60)


def _hold_chat(unit, number: int, stop: threading.Event, statuses: dict) -> threading.Thread:
    def run():
        with _device(unit, number) as http, http.stream("POST", "/v1/chat/completions", json=LONG_CHAT) as response:
            statuses[number] = response.status_code
            stop.wait(120)  # leaving the block hangs up: the unit cancels the chat

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for(unit, check, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=unit.url, timeout=10) as http:
        while True:
            engine = http.get("/healthz").json()["engine"]
            if check(engine):
                return engine
            assert time.monotonic() < deadline, f"the engine never got there: {engine}"
            time.sleep(0.1)


def _ask_for_a_piece(unit) -> httpx.Response:
    secrets = derive_mesh_secrets(parse_mesh_key(KEY))
    path, rng = "/mesh/models/Toy/files/params_shard_0.bin", "bytes=0-9"
    header = sign_peer_request(secrets, "00000000000000bb", "GET", path, rng, now_ms=int(time.time() * 1000))
    with httpx.Client(base_url=unit.url, timeout=10) as http:
        return http.get(path, headers={"Range": rng, PEER_AUTH_HEADER: header})


def test_a_full_queue_refuses_with_retry_after_and_everything_else_still_answers(unit):
    stop, statuses = threading.Event(), {}
    threads = [_hold_chat(unit, 2, stop, statuses)]
    try:
        _wait_for(unit, lambda engine: engine["busy"] == 1)
        threads += [_hold_chat(unit, number, stop, statuses) for number in (3, 4)]
        engine = _wait_for(unit, lambda engine: engine["queued"] == 2)
        assert (engine["busy"], engine["queued"], engine["queue_limit"]) == (1, 2, 2)

        with _device(unit, 5) as http:
            refused = http.post("/v1/chat/completions", json=SHORT_CHAT)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "unit_busy"
            assert int(refused.headers["retry-after"]) >= 1
            # The rest of the unit answers while every chat place is taken.
            assert http.get("/healthz").status_code == 200
            assert http.get("/").status_code == 200
            assert http.get("/api/unit").status_code == 200
            assert http.get("/generate_204").status_code < 500
            conversation = http.post("/api/conversations", json={})
            assert conversation.status_code == 201
        piece = _ask_for_a_piece(unit)
        assert piece.status_code == 206 and len(piece.content) == 10
        assert statuses == {2: 200}  # the running chat streams; the queued ones wait for their turn
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    # Every chat hung up: the worker and the queue are free again, and the next device gets its answer.
    _wait_for(unit, lambda engine: engine["busy"] == 0 and engine["queued"] == 0)
    with _device(unit, 5) as http:
        answered = http.post("/v1/chat/completions", json=SHORT_CHAT)
        assert answered.status_code == 200 and answered.json()["choices"][0]["message"]["content"]


def test_one_device_gets_one_chat_whatever_cookie_it_sends(unit):
    stop, statuses = threading.Event(), {}
    thread = _hold_chat(unit, 6, stop, statuses)
    try:
        _wait_for(unit, lambda engine: engine["busy"] == 1)
        # A fresh client is a fresh cookie, i.e. a "new phone" as far as cookies go: still the same device.
        with _device(unit, 6) as http:
            again = http.post("/v1/chat/completions", json=SHORT_CHAT)
            assert again.status_code == 429 and again.json()["error"]["code"] == "too_many_chats"
            assert int(again.headers["retry-after"]) >= 1
            conversation = http.post("/api/conversations", json={}).json()
            message = http.post(f"/api/conversations/{conversation['id']}/messages", json={"content": "hi"})
            assert message.status_code == 429
            assert http.get(f"/api/conversations/{conversation['id']}").json()["messages"] == []  # nothing stored
        # Another device is not held back by it: its chat is taken (queued behind), and answered in turn.
        answers = {}

        def ask_from_another_device():
            with _device(unit, 7) as http:
                answers[7] = http.post("/v1/chat/completions", json=SHORT_CHAT)

        other = threading.Thread(target=ask_from_another_device, daemon=True)
        other.start()
        _wait_for(unit, lambda engine: engine["queued"] == 1)
    finally:
        stop.set()
        thread.join(timeout=60)
    other.join(timeout=120)
    assert answers[7].status_code == 200
