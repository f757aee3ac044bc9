"""A real llama.cpp worker killed mid-reply: the web app stays up, the request fails clearly, the engine restarts."""

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import read_sse, start_live_unit

pytestmark = pytest.mark.engine


def _engine_workers(parent_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid and b"run_engine_worker" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def unit(tmp_path):
    unit = start_live_unit(tmp_path)
    yield unit
    unit.stop()


def test_killed_engine_fails_one_request_then_recovers(unit):
    workers = _engine_workers(unit.process.pid)
    assert len(workers) == 1
    with unit.client() as http:
        conversation = http.post("/api/conversations", json={}).json()
        with http.stream(
            "POST",
            f"/api/conversations/{conversation['id']}/messages",
            json={
                "content": "Count from 1 to 1000, separated by commas.",
                "params": {"max_tokens": 1900, "temperature": 0},
            },
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            os.kill(workers[0], signal.SIGKILL)  # what a segfault in llama.cpp looks like
            rest = [line for line in lines if line.startswith("data:")]
        assert '"type": "error"' in rest[-1] and "engine_failed" in rest[-1]
        # The portal never went down, and nothing half-written was stored.
        assert http.get("/api/conversations").status_code == 200
        assert http.get(f"/api/conversations/{conversation['id']}").json()["messages"] == []
        deadline = time.monotonic() + 60
        while http.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        with http.stream(
            "POST",
            f"/api/conversations/{conversation['id']}/messages",
            json={"content": "Say hi.", "params": {"max_tokens": 8}},
        ) as response:
            assert read_sse(response)[-1]["type"] == "done"
    restarted = _engine_workers(unit.process.pid)
    assert len(restarted) == 1 and restarted != workers


def test_sigterm_shuts_down_cleanly_with_its_workers(unit):
    workers = _engine_workers(unit.process.pid)
    unit.process.send_signal(signal.SIGTERM)
    assert unit.process.wait(timeout=20) == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
