"""Shared fixtures: a real `iplm serve` process with the real default model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveUnit:
    url: str
    data_dir: Path
    process: subprocess.Popen
    args: list

    def client(self, *, device: int | None = None, **kwargs) -> httpx.Client:
        """A fresh HTTP client: its own cookie jar, i.e. its own anonymous phone.

        The unit limits chats per address: `device` N sends from 127.0.0.N, another device's address.
        """
        if device is not None:
            kwargs["transport"] = httpx.HTTPTransport(local_address=f"127.0.0.{device}")
        return httpx.Client(base_url=self.url, **{"timeout": 120, **kwargs})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.process = _spawn(self.args)
        _wait_healthy(self.url, self.process)


def _spawn(args: list) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli.main", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"iplm serve exited ({process.returncode}):\n{process.stdout.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("iplm serve did not become healthy")


def start_live_unit(data_dir: Path, *extra: str) -> LiveUnit:
    port = _free_port()
    args = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--n-ctx",
        "2048",
        "--max-tokens",
        "48",
        *extra,
    ]
    process = _spawn(args)
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, process)
    return LiveUnit(url=url, data_dir=data_dir, process=process, args=args)


@pytest.fixture(scope="module")
def two_worker_unit(tmp_path_factory):
    """`iplm serve` as live_unit, with two engine workers of one thread: room to answer pieces side by side."""
    unit = start_live_unit(tmp_path_factory.mktemp("unit"), "--workers", "2", "--threads", "1")
    yield unit
    unit.stop()


@pytest.fixture(scope="module")
def live_unit(tmp_path_factory):
    """`iplm serve` on a free loopback port with the default model, its own data dir, for one test module."""
    unit = start_live_unit(tmp_path_factory.mktemp("unit"))
    yield unit
    unit.stop()


def read_sse(response: httpx.Response) -> list:
    """The `data:` payloads of an SSE response, in order (JSON decoded, except the final [DONE])."""
    import json

    payloads = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


@pytest.fixture(scope="module")
def admin_unit(tmp_path_factory):
    """A live unit with an admin PIN and two admin-added models served by a loopback source (tests/admin_unit.py)."""
    from tests.admin_unit import start_admin_unit

    live, source = start_admin_unit(tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("unit"))
    live.source = source
    yield live
    live.stop()
    source.stop()


def send_message(http: httpx.Client, conversation_id: str, content: str, **extra) -> tuple:
    """Post a message to a conversation the way the web app does: (response, its SSE payloads), or
    (response, None) when the unit refused it."""
    with http.stream(
        "POST", f"/api/conversations/{conversation_id}/messages", json={"content": content, **extra}
    ) as response:
        if response.status_code != 200:
            response.read()
            return response, None
        return response, read_sse(response)
