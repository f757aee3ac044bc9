"""Installing from peers in a real lab (namespaces, shaped links, `iplm serve` on each unit), with faults:
a peer killed mid-transfer, a peer serving corrupted pieces. Every model ends fully verified, or partial."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.install_model import install_model
from appliance.library.library_types import ModelSource
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.store_models import database
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.netlab.start_net_lab import start_net_lab

pytestmark = [pytest.mark.netns, pytest.mark.engine]

ROOT = Path(__file__).resolve().parents[2]
PIECE = 64 * 1024
KEY = create_mesh_key()
INSTALLER, PEER_A, PEER_C = 0, 1, 2


def _prepare_peer(data_dir: Path, toy: Path, manifest) -> None:
    open_database(data_dir)
    add_model("Toy", manifest, ModelSource(kind="dir", base=str(toy)))
    install_model("Toy", data_dir=data_dir, node_id=load_node_id(data_dir))
    store_mesh_key(data_dir, KEY)
    database.close()


def _serve(lab, index: int, data_dir: Path, log: Path) -> subprocess.Popen:
    return lab.run(
        index,
        [
            sys.executable,
            "-m",
            "appliance.cli.main",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--data-dir",
            str(data_dir),
            "--n-ctx",
            "512",
        ],
        cwd=ROOT,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )


def _wait_serving(lab, index: int, address: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            lab.run(
                index,
                [
                    sys.executable,
                    "-c",
                    f"import urllib.request as u; u.urlopen('http://{address}:8080/healthz', timeout=2)",
                ],
                stderr=subprocess.DEVNULL,
            ).wait()
            == 0
        ):
            return
        time.sleep(0.3)
    raise RuntimeError(f"unit {index} did not serve")


_INSTALL = textwrap.dedent("""
    import json, sys
    from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
    from appliance.mesh.pieces.install_from_peers import install_from_peers
    from appliance.mesh.key.parse_mesh_key import parse_mesh_key
    from appliance.store.open_database import open_database
    from appliance.library.library_errors import LibraryError
    data_dir, key, peers = sys.argv[1], sys.argv[2], sys.argv[3:]
    open_database(data_dir)
    dropped = {}
    def progress(update):
        for supplier in update.suppliers:
            if supplier.dropped:
                dropped[supplier.name] = supplier.dropped
    try:
        result = install_from_peers("Toy", peers, data_dir=data_dir, node_id="00000000000000b0",
                                    secrets=derive_mesh_secrets(parse_mesh_key(key)), progress=progress)
    except LibraryError as exc:
        result = {"error": exc.code}
    print(json.dumps({"result": result, "dropped": dropped}))
""")


@pytest.fixture
def lab_with_peers(tmp_path):
    toy = make_mlc_model_dir(tmp_path / "toy", hidden_size=512, intermediate_size=1408)
    manifest = build_manifest(toy, piece_size=PIECE)
    dirs = {name: tmp_path / name for name in ("a", "b", "c")}
    for name in ("a", "c"):
        _prepare_peer(dirs[name], toy, manifest)
    open_database(dirs["b"])
    store_mesh_key(dirs["b"], KEY)  # B checks its peers' signed answers against the mesh's CA
    # The origin is unreachable (nothing listens there, so it refuses at once): only peers can serve.
    add_model("Toy", manifest, ModelSource(kind="hf", base="http://127.0.0.1:9", repo="gone"))
    database.close()
    with start_net_lab(units=3, prefix="iplm-pf") as lab:
        yield lab, dirs, toy, tmp_path


def _start_peers(lab, dirs, tmp_path):
    peers = {}
    for index, name in ((PEER_A, "a"), (PEER_C, "c")):
        peers[name] = _serve(lab, index, dirs[name], tmp_path / f"{name}.log")
    for index in (PEER_A, PEER_C):
        _wait_serving(lab, INSTALLER, lab.units[index].address)
    return peers


def _install_on_b(lab, dirs) -> subprocess.Popen:
    urls = [f"http://{lab.units[i].address}:8080" for i in (PEER_A, PEER_C)]
    return lab.run(
        INSTALLER,
        [sys.executable, "-c", _INSTALL, str(dirs["b"]), KEY, *urls],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _same_files(model_dir: Path, toy: Path) -> bool:
    return all(filecmp.cmp(toy / f.name, model_dir / f.name, shallow=False) for f in toy.iterdir())


def test_a_peer_killed_mid_transfer_is_dropped_and_the_other_finishes(lab_with_peers):
    lab, dirs, toy, tmp_path = lab_with_peers
    for index in (PEER_A, PEER_C):
        lab.limit(index, rate="8mbit")  # about 4 s for the model from both: time to kill one midway
    peers = _start_peers(lab, dirs, tmp_path)
    installer = _install_on_b(lab, dirs)
    time.sleep(1.0)
    os.killpg(peers["a"].pid, signal.SIGKILL)
    out, err = installer.communicate(timeout=120)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["result"]["state"] == "installed", err[-2000:]
    assert f"http://{lab.units[PEER_A].address}:8080" in report["dropped"]
    assert _same_files(dirs["b"] / "models" / "Toy", toy)


def test_a_peer_serving_corrupted_pieces_is_dropped(lab_with_peers):
    lab, dirs, toy, tmp_path = lab_with_peers
    shard = dirs["a"] / "models" / "Toy" / "params_shard_1.bin"
    data = bytearray(shard.read_bytes())
    for offset in range(100, len(data), PIECE):  # every piece of A's copy of this shard is bad now
        data[offset] ^= 0xFF
    shard.write_bytes(bytes(data))
    _start_peers(lab, dirs, tmp_path)
    out, err = _install_on_b(lab, dirs).communicate(timeout=120)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["result"]["state"] == "installed", err[-2000:]
    assert "verification" in report["dropped"][f"http://{lab.units[PEER_A].address}:8080"]
    assert _same_files(dirs["b"] / "models" / "Toy", toy)


def test_with_every_peer_gone_the_install_stays_visibly_partial(lab_with_peers):
    lab, dirs, toy, tmp_path = lab_with_peers
    for index in (PEER_A, PEER_C):
        lab.limit(index, rate="4mbit")
    peers = _start_peers(lab, dirs, tmp_path)
    installer = _install_on_b(lab, dirs)
    time.sleep(1.5)
    lab.cut(PEER_A)
    os.killpg(peers["c"].pid, signal.SIGKILL)
    out, err = installer.communicate(timeout=120)
    report = json.loads(out.strip().splitlines()[-1])
    assert "error" in report["result"], report
    open_database(dirs["b"])
    try:
        from appliance.library.list_models import list_models

        toy_row = {m["id"]: m for m in list_models("00000000000000b0")}["Toy"]
    finally:
        database.close()
    assert toy_row["state"] == "partial" and 0 < toy_row["done_bytes"] < toy_row["size_bytes"]
