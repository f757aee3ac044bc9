"""The `iplm` command line, run as a real process: `probe`, and `serve`'s argument and start-up errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_cli(*args: str, data_dir: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if data_dir is not None:
        env["IPLM_DATA"] = str(data_dir)  # nothing a test starts may write to the real data dir
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- probe ----------------------------------------------------------------------------------------


def test_probe_prints_the_recommendation():
    result = _run_cli("probe")

    assert result.returncode == 0, result.stderr
    lines = {line.split(None, 1)[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in ("board", "engine", "model", "max_tokens", "threads", "workers", "why"):
        assert name in lines, result.stdout
    assert "context size" in result.stdout
    assert lines["engine"].split()[1:] in (["llama.cpp", "on", "cpu"], ["mlc", "on", "cuda"], ["mlc", "on", "opencl"])
    assert lines["max_tokens"].split()[1].isdigit()
    context = next(line for line in result.stdout.splitlines() if "context size" in line)
    assert context.split()[-1] == "tokens" and context.split()[-2].isdigit()


def test_probe_json():
    result = _run_cli("probe", "--json")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"device", "recommendation"}
    assert {"board", "cpu_cores", "memory_bytes", "gpu_kind", "mlc_available"} <= set(data["device"])
    assert {"engine", "device", "model_id", "n_ctx", "max_tokens", "n_threads", "workers", "reason"} <= set(
        data["recommendation"]
    )


def test_probe_shows_the_overrides():
    result = _run_cli("probe", "--n-ctx", "1024", "--max-tokens", "99", "--threads", "3", "--workers", "2", "--json")

    assert result.returncode == 0, result.stderr
    recommendation = json.loads(result.stdout)["recommendation"]
    assert (recommendation["n_ctx"], recommendation["max_tokens"]) == (1024, 99)
    assert (recommendation["n_threads"], recommendation["workers"]) == (3, 2)


def test_probe_text_shows_the_overrides():
    result = _run_cli("probe", "--n-ctx", "1024", "--max-tokens", "99")

    assert result.returncode == 0, result.stderr
    assert "1024 tokens" in result.stdout
    assert any(line.split() == ["max_tokens", "99"] for line in result.stdout.splitlines())


# --- bad arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve", "--port", "70000"), "argument --port: 70000 is not a TCP port (1-65535)"),
        (("serve", "--port", "abc"), "argument --port: 'abc' is not an integer"),
        (("serve", "--port", "0"), "argument --port: 0 must be at least 1"),
        (("serve", "--n-ctx", "0"), "argument --n-ctx: 0 must be at least 1"),
        (("serve", "--max-tokens", "-5"), "argument --max-tokens: -5 must be at least 1"),
        (("serve", "--workers", "two"), "argument --workers: 'two' is not an integer"),
        (("serve", "--sequences", "0"), "argument --sequences: 0 must be at least 1"),
        (("serve", "--temperature", "5"), "argument --temperature: 5.0 is out of range (0-2)"),
        (("serve", "--temperature", "nan"), "argument --temperature: nan is out of range (0-2)"),
        (("serve", "--temperature", "warm"), "argument --temperature: 'warm' is not a number"),
        (("serve", "--hang-timeout", "0"), "argument --hang-timeout: 0.0 must be a number of seconds greater than 0"),
        (("serve", "--hang-timeout", "-1"), "argument --hang-timeout: -1.0 must be a number"),
        (("serve", "--hang-timeout", "inf"), "argument --hang-timeout: inf must be a number"),
        (("serve", "--ble-adapter", "hci0/x"), "argument --ble-adapter: 'hci0/x' is not a Bluetooth adapter"),
        (("probe", "--n-ctx", "many"), "argument --n-ctx: 'many' is not an integer"),
        (("serve", "--no-such-flag"), "unrecognized arguments: --no-such-flag"),
        (("launch",), "invalid choice: 'launch'"),
        ((), "the following arguments are required: command"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, args, message):
    result = _run_cli(*args, data_dir=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("usage: iplm")
    assert result.stdout == ""
    assert not any(tmp_path.iterdir())  # refused before anything was created


# --- serve start-up errors ------------------------------------------------------------------------


def test_serve_with_a_missing_model(tmp_path):
    result = _run_cli(
        "serve",
        "--model",
        "/nonexistent.gguf",
        "--host",
        "127.0.0.1",
        "--port",
        str(_free_port()),
        "--data-dir",
        str(tmp_path / "data"),
        data_dir=tmp_path / "env",
    )

    assert result.returncode == 2
    assert "iplm: cannot start the engine: No model at /nonexistent.gguf" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "data" / "iplm.db").is_file()  # --data-dir beats $IPLM_DATA
    assert not (tmp_path / "env").exists()


@pytest.mark.engine  # loads the real default model (about a second), then cannot bind
def test_serve_on_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = _run_cli(
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--n-ctx",
            "512",
            data_dir=tmp_path,
        )

    assert result.returncode == 2, result.stderr
    assert f"iplm: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert "serving on" not in result.stdout


@pytest.mark.engine
def test_serve_prints_the_admin_pin_on_the_first_start_only(tmp_path):
    from tests.conftest import start_live_unit

    outputs = []
    for _ in range(2):
        unit = start_live_unit(tmp_path)
        unit.stop()
        outputs.append(unit.process.stdout.read())
    first = re.search(r"the admin PIN is (\d{8})\b", outputs[0])
    assert first is not None, outputs[0]
    assert "admin PIN" not in outputs[1]
    from appliance.admin.check_admin_pin import check_admin_pin
    from appliance.store.open_database import open_database

    database = open_database(tmp_path)
    assert check_admin_pin(first[1])
    database.close()


@pytest.mark.engine
def test_a_mesh_created_on_the_admin_page_starts_without_a_restart(tmp_path):
    import shutil
    import time

    import httpx

    from appliance.admin.set_admin_pin import set_admin_pin
    from appliance.store.open_database import open_database
    from tests.conftest import start_live_unit

    if shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        pytest.fail("this test needs mosquitto (scripts/dev setup --test installs it)", pytrace=False)
    database = open_database(tmp_path)
    set_admin_pin("42424242")
    database.close()
    broker_port = _free_port()
    unit = start_live_unit(tmp_path, "--mesh-address", "127.0.0.1", "--mesh-port", str(broker_port))
    try:
        with httpx.Client(base_url=unit.url, timeout=30) as admin:
            assert admin.post("/api/admin/session", json={"pin": "42424242"}).status_code == 200
            before = admin.get("/api/admin/mesh").json()
            assert before["running"] is False and before["mesh_id"] is None
            created = admin.post("/api/admin/mesh/create").json()
            assert created["restart_needed"] is False
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not admin.get("/api/admin/mesh").json()["running"]:
                time.sleep(0.5)
            after = admin.get("/api/admin/mesh").json()
            assert after["running"] is True and after["mesh_id"] == created["mesh_id"], after
            # The unit's own broker and agent: `iplm mesh status` reads what the running agent writes.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = _run_cli("mesh", "status", "--json", "--data-dir", str(tmp_path), data_dir=tmp_path)
                if status.returncode == 0:
                    break
                time.sleep(0.5)
            assert status.returncode == 0, status.stdout + status.stderr
            assert json.loads(status.stdout)["mesh_id"] == created["mesh_id"]
    finally:
        unit.stop()
    assert "Traceback" not in unit.process.stdout.read()  # stderr goes there too
