"""Whole chats spread over two units in the namespace lab (`iplm serve` on each, the default model, one
worker on one thread each): a busy unit sends chats to the idle one; a peer killed mid-reply leaves a
reply that goes on here, nothing lost and nothing twice; a client that leaves stops the work on the peer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.mesh.key.create_mesh_key import create_mesh_key
from tests.netlab.start_net_lab import start_net_lab

pytestmark = [pytest.mark.netns, pytest.mark.engine, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
KEY = create_mesh_key()
A, B = 0, 1
# Long replies (a count does not stop by itself) keep a unit busy for the whole of max_tokens.
LONG = "Count from 1 to 1000, one number per line, with no other text."

_CHAT = """
import json, sys, time, urllib.request
url, body = sys.argv[1], json.loads(sys.argv[2])
request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
started = time.monotonic()
with urllib.request.urlopen(request, timeout=300) as response:
    if not body.get("stream"):
        print(json.dumps(json.load(response)), flush=True)
        raise SystemExit
    for line in response:
        line = line.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            print(line[6:], flush=True)
            if body.get("leave_after") and time.monotonic() - started > body["leave_after"]:
                raise SystemExit  # the client goes away mid-reply
"""


def _cli(lab, index: int, *argv: str) -> str:
    return lab.check_output(index, [sys.executable, "-m", "appliance.cli.main", *argv], timeout=60, cwd=ROOT)


def _serve(lab, index: int, data_dir: Path, log: Path) -> subprocess.Popen:
    address = lab.units[index].address
    argv = [sys.executable, "-m", "appliance.cli.main", "serve", "--host", "0.0.0.0", "--port", "8080",
            "--data-dir", str(data_dir), "--n-ctx", "1024", "--max-tokens", "64", "--workers", "1",
            "--threads", "1", "--mesh-address", address, "--mesh-port", "1883"]  # fmt: skip
    return lab.run(index, argv, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen in {timeout:g} s")


def _ready_peer(lab, index: int, data_dir: Path, peer: int):
    # The peer is online and its workers are ready: its presence says so.
    def check():
        try:
            status = json.loads(_cli(lab, index, "mesh", "status", "--json", "--data-dir", str(data_dir)))
        except (subprocess.SubprocessError, ValueError):
            return None
        for node, entry in status["peers"].items():
            load = entry.get("presence", {}).get("load", {})
            if entry["state"] == "online" and load.get("workers_ready"):
                return node
        return None

    return _wait_for(check, 90, f"unit {index} seeing unit {peer} ready")


@pytest.fixture
def units(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    with start_net_lab(units=2, prefix="iplm-cw") as lab:
        for index, data_dir in enumerate(dirs):
            other = lab.units[1 - index].address
            _cli(lab, index, "mesh", "join", KEY, "--data-dir", str(data_dir))
            _cli(lab, index, "mesh", "add", f"{other}:1883", "--data-dir", str(data_dir))
        processes = [_serve(lab, i, dirs[i], tmp_path / f"{'ab'[i]}.log") for i in (A, B)]
        nodes = [_ready_peer(lab, A, dirs[A], B), _ready_peer(lab, B, dirs[B], A)]
        yield {"lab": lab, "dirs": dirs, "processes": processes, "logs": [tmp_path / "a.log", tmp_path / "b.log"],
               "b_node": nodes[0], "a_node": nodes[1]}  # fmt: skip


def _chat(lab, index: int, body: dict) -> subprocess.Popen:
    url = f"http://{lab.units[index].address}:8080"
    return lab.run(A, [sys.executable, "-c", _CHAT, url, json.dumps(body)], stdout=subprocess.PIPE, text=True)


def _deltas(process: subprocess.Popen) -> list[str]:
    out, _ = process.communicate(timeout=300)
    chunks = [json.loads(line) for line in out.splitlines() if line]
    return [c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices")]


def _log(units, index: int) -> str:
    return units["logs"][index].read_text()


def _busy_a(units) -> subprocess.Popen:
    # A long chat holds A's only worker: chats that come now would wait there.
    process = _chat(units["lab"], A, {"messages": [{"role": "user", "content": LONG}], "max_tokens": 900,
                                      "temperature": 0, "stream": True})  # fmt: skip
    _wait_for(lambda: _engine_status(units["lab"], A)["busy"] == 1, 60, "A's worker taking the long chat")
    return process


def _engine_status(lab, index: int) -> dict:
    probe = f"import urllib.request as u; print(u.urlopen('http://{lab.units[index].address}:8080/healthz').read().decode())"
    return json.loads(lab.check_output(index, [sys.executable, "-c", probe]))["engine"]


def test_a_busy_unit_sends_the_chat_to_the_idle_one(units):
    busy = _busy_a(units)
    reply = _chat(units["lab"], A, {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 24})
    out, _ = reply.communicate(timeout=300)
    answer = json.loads(out)
    assert answer["choices"][0]["message"]["content"].strip()
    assert re.fullmatch(r"iplm-[0-9a-f]{4}", answer["iplm_unit"])  # the client is told which unit answered
    assert re.search(rf"chat [0-9a-f]{{16}} sent to {units['b_node']}", _log(units, A)), _log(units, A)[-3000:]
    assert re.search(rf"chat [0-9a-f]{{16}} for {units['a_node']} ended: (stop|length)", _log(units, B))
    busy.communicate(timeout=300)


def test_a_peer_killed_mid_reply_leaves_the_reply_to_go_on_here(units):
    busy = _busy_a(units)
    body = {"messages": [{"role": "user", "content": "Count from one to forty in words."}], "max_tokens": 300,
            "temperature": 0, "seed": 3, "stream": True}  # fmt: skip
    reply = _chat(units["lab"], A, body)
    # B runs it; as soon as the client has the first of it, B dies (no goodbye: its broker and agent go too).
    lines = iter(reply.stdout.readline, "")
    first = next(line for line in lines if _content(json.loads(line)))
    assert re.search(r"running chat [0-9a-f]{16} for", _log(units, B))
    os.killpg(units["processes"][B].pid, signal.SIGKILL)
    rest = [_content(json.loads(line)) for line in lines if line.strip()]
    reply.wait(timeout=300)
    busy.communicate(timeout=300)
    whole = _content(json.loads(first)) + "".join(rest)
    assert re.search(r"continuing a chat here: the peer is gone", _log(units, A)), _log(units, A)[-3000:]
    # The same model, greedy, alone on A now: the reply it gives whole is the one the client got in two parts.
    again = _chat(units["lab"], A, {**body, "stream": False})
    out, _ = again.communicate(timeout=300)
    assert whole == json.loads(out)["choices"][0]["message"]["content"]
    assert json.loads(out)["iplm_unit"] == ""  # this unit answered


def _content(chunk: dict) -> str:
    return chunk["choices"][0]["delta"].get("content", "") if chunk.get("choices") else ""


def test_a_client_that_leaves_stops_the_work_on_the_peer(units):
    busy = _busy_a(units)
    body = {"messages": [{"role": "user", "content": LONG}], "max_tokens": 900, "stream": True,
            "leave_after": 2}  # fmt: skip
    reply = _chat(units["lab"], A, body)
    reply.communicate(timeout=300)
    ended = _wait_for(
        lambda: re.search(r"chat [0-9a-f]{16} for \w+ ended: (\w+)", _log(units, B)), 60, "B ending the chat"
    )
    assert ended.group(1) == "cancelled", _log(units, B)[-3000:] + _log(units, A)[-3000:]
    busy.communicate(timeout=300)
