"""Start the unit the hostile-input suite attacks: a real `iplm serve` on loopback with the packaged model."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from appliance.admin.set_admin_pin import set_admin_pin
from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.library_types import ModelSource
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.store_models import database
from benchmarks.hostile.hostile_types import HostileUnit
from benchmarks.hostile.stop_hostile_unit import stop_hostile_unit
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

PIN = "58203917"
ROOT = Path(__file__).resolve().parents[2]
_SHARD = "params_shard_0.bin"
_PIECE = 64 * 1024
_MANY = 10**6  # a fault that never wears off: the source is hostile, not flaky
# (model id, what its source does wrong, the fault): every one must end in a clean install error.
_FAULTS = (
    ("hostile-corrupt", "bytes that fail verification", lambda s, p: s.corrupt(p, 100, times=_MANY)),
    ("hostile-wrong-size", "announces the wrong size", lambda s, p: s.wrong_size(p, 999)),
    ("hostile-truncated", "cuts every answer short", lambda s, p: s.truncate(p, 1000, times=_MANY)),
    ("hostile-oversize", "sends more than it announced", lambda s, p: s.oversize(p, 200_000, times=_MANY)),
    ("hostile-errors", "answers every request with 500", lambda s, p: s.fail_status(p, 500, times=_MANY)),
)
_NO_RANGE = ("hostile-no-range", "ignores Range and sends corrupt bytes")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _add_hostile_models(work: Path) -> tuple[tuple[tuple[str, str], ...], tuple]:
    """Admin-added models (their true manifests pinned) whose sources then misbehave, each its own way."""
    toy = make_mlc_model_dir(work / "toy")
    manifest = build_manifest(toy, piece_size=_PIECE)
    ranged_root, plain_root = work / "sources", work / "plain-sources"
    ranged, plain = start_model_source(ranged_root), start_model_source(plain_root)
    plain.ignore_ranges()  # a plain file server: the whole file, whatever was asked
    models = []
    for model_id, what, fault in (*_FAULTS, (*_NO_RANGE, lambda s, p: s.corrupt(p, 100, times=_MANY))):
        source, root = (plain, plain_root) if model_id == _NO_RANGE[0] else (ranged, ranged_root)
        shutil.copytree(toy, root / "hostile" / model_id)
        add_model(model_id, manifest, ModelSource(kind="hf", base=source.base_url, repo=f"hostile/{model_id}"))
        fault(source, f"hostile/{model_id}/{_SHARD}")
        models.append((model_id, what))
    return tuple(models), (ranged, plain)


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"iplm serve exited ({process.returncode}):\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("iplm serve did not become healthy in 120 s")


def start_hostile_unit(work: Path) -> HostileUnit:
    """`iplm serve` on a free loopback port, data in `work`: a mesh key (as `iplm mesh create` makes it), an
    admin PIN, and admin-added models whose loopback sources are hostile. Stop it with stop_hostile_unit."""
    data_dir = work / "unit"
    data_dir.mkdir(parents=True)
    key = create_mesh_key()
    store_mesh_key(data_dir, key)
    open_database(data_dir)
    try:
        set_admin_pin(PIN)
        models, sources = _add_hostile_models(work)
    finally:
        database.close()
    port, mesh_port = _free_port(), _free_port()
    log = work / "unit.log"
    with log.open("wb") as out:  # a file, not a pipe: a unit that logs a lot must never block on it
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--data-dir", str(data_dir), "--n-ctx", "2048", "--max-tokens", "16"]
            + ["--mesh-address", "127.0.0.1", "--mesh-port", str(mesh_port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    node_id = load_node_id(data_dir)  # what iplm serve will read
    unit = HostileUnit(
        url, data_dir, process, log, PIN, derive_mesh_secrets(parse_mesh_key(key)), models, sources, node_id, mesh_port
    )
    try:
        _wait_healthy(url, process, log)
    except BaseException:
        stop_hostile_unit(unit)
        raise
    return unit
