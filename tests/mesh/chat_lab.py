"""The two-unit chat lab shared by the work-spreading tests: `iplm serve` on two namespaces of the lab, in one
mesh, each with the default model on one worker and one thread; a client process in A's namespace."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.mesh.key.create_mesh_key import create_mesh_key
from tests.netlab.start_net_lab import start_net_lab

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


def cli(lab, index: int, *argv: str) -> str:
    return lab.check_output(index, [sys.executable, "-m", "appliance.cli.main", *argv], timeout=60, cwd=ROOT)


def serve(lab, index: int, data_dir: Path, log: Path, *extra: str) -> subprocess.Popen:
    # One chat at a time per unit: a unit with its worker taken is busy, which these tests of placement use.
    address = lab.units[index].address
    argv = [sys.executable, "-m", "appliance.cli.main", "serve", "--host", "0.0.0.0", "--port", "8080",
            "--data-dir", str(data_dir), "--n-ctx", "1024", "--max-tokens", "64", "--workers", "1",
            "--threads", "1", "--sequences", "1", "--mesh-address", address, "--mesh-port", "1883",
            *extra]  # fmt: skip
    return lab.run(index, argv, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen in {timeout:g} s")


def ready_peer(lab, index: int, data_dir: Path, peer: int):
    # The peer is online and its workers are ready: its presence says so.
    def check():
        try:
            status = json.loads(cli(lab, index, "mesh", "status", "--json", "--data-dir", str(data_dir)))
        except (subprocess.SubprocessError, ValueError):
            return None
        for node, entry in status["peers"].items():
            load = entry.get("presence", {}).get("load", {})
            if entry["state"] == "online" and load.get("workers_ready"):
                return node
        return None

    return wait_for(check, 90, f"unit {index} seeing unit {peer} ready")


@contextlib.contextmanager
def start_chat_units(tmp_path: Path, *b_extra: str):
    """Units A and B in one mesh, each serving (B with `b_extra` added to its `iplm serve`)."""
    dirs = [tmp_path / "a", tmp_path / "b"]
    with start_net_lab(units=2, prefix="iplm-cw") as lab:
        for index, data_dir in enumerate(dirs):
            other = lab.units[1 - index].address
            cli(lab, index, "mesh", "join", KEY, "--data-dir", str(data_dir))
            cli(lab, index, "mesh", "add", f"{other}:1883", "--data-dir", str(data_dir))
        processes = [serve(lab, A, dirs[A], tmp_path / "a.log"), serve(lab, B, dirs[B], tmp_path / "b.log", *b_extra)]
        nodes = [ready_peer(lab, A, dirs[A], B), ready_peer(lab, B, dirs[B], A)]
        yield {"lab": lab, "dirs": dirs, "processes": processes, "logs": [tmp_path / "a.log", tmp_path / "b.log"],
               "b_node": nodes[0], "a_node": nodes[1]}  # fmt: skip


@pytest.fixture
def chat_units(tmp_path):
    with start_chat_units(tmp_path) as units:
        yield units


def chat(lab, index: int, body: dict) -> subprocess.Popen:
    url = f"http://{lab.units[index].address}:8080"
    return lab.run(A, [sys.executable, "-c", _CHAT, url, json.dumps(body)], stdout=subprocess.PIPE, text=True)


def log(chat_units, index: int) -> str:
    return chat_units["logs"][index].read_text()


def engine_status(lab, index: int) -> dict:
    probe = f"import urllib.request as u; print(u.urlopen('http://{lab.units[index].address}:8080/healthz').read().decode())"
    return json.loads(lab.check_output(index, [sys.executable, "-c", probe]))["engine"]


def hold_a_busy(chat_units, max_tokens: int = 900) -> subprocess.Popen:
    """A long chat holding A's only worker: chats that come now would wait there."""
    process = chat(chat_units["lab"], A, {"messages": [{"role": "user", "content": LONG}], "max_tokens": max_tokens,
                                          "temperature": 0, "stream": True})  # fmt: skip
    wait_for(lambda: engine_status(chat_units["lab"], A)["busy"] == 1, 60, "A's worker taking the long chat")
    return process
