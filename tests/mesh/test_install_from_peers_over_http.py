"""Unit B installs a model from units A and C over the mesh's HTTP piece service (real `iplm serve`s)."""

from __future__ import annotations

import filecmp
import threading
import time

import httpx
import pytest

from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ModelSource
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request
from appliance.mesh.pieces.install_from_peers import install_from_peers
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.store_models import HeldPiece, LibraryModel, database
from tests.conftest import start_live_unit
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

pytestmark = pytest.mark.engine

REPO = "org/Toy"
PIECE = 64 * 1024
KEY = create_mesh_key()
SECRETS = derive_mesh_secrets(parse_mesh_key(KEY))
B_NODE = "00000000000000bb"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """Units A (whole model) and C (every other piece), serving; the model's source, which then goes away."""
    root = tmp_path_factory.mktemp("source")
    toy = make_mlc_model_dir(root / REPO, hidden_size=512, intermediate_size=1408)
    manifest = build_manifest(toy, piece_size=PIECE)
    source = start_model_source(root)
    units = {}
    for name in ("A", "C"):
        data_dir = tmp_path_factory.mktemp(name)
        open_database(data_dir)
        add_model("Toy", manifest, ModelSource(kind="hf", base=source.base_url, repo=REPO))
        node_id = load_node_id(data_dir)
        install_model("Toy", data_dir=data_dir, node_id=node_id)
        if name == "C":
            HeldPiece.delete().where(HeldPiece.piece.bin_and(1) == 1).execute()  # C holds half: a partial install
            LibraryModel.update(state="partial").execute()
        store_mesh_key(data_dir, KEY)
        database.close()
        units[name] = start_live_unit(data_dir)
    source.vanish_after(0)  # from now on the internet is gone: only the mesh can help
    yield {"toy": toy, "manifest": manifest, "source": source, **units}
    for unit in units.values():
        unit.stop()
    source.stop()


@pytest.fixture
def b_dir(tmp_path, mesh):
    open_database(tmp_path)
    store_mesh_key(tmp_path, KEY)  # B checks its peers' answers against the mesh's CA
    add_model("Toy", mesh["manifest"], ModelSource(kind="hf", base=mesh["source"].base_url, repo=REPO))
    return tmp_path


def test_b_installs_from_two_peers_every_piece_verified(mesh, b_dir):
    updates = []
    result = install_from_peers(
        "Toy", [mesh["A"].url, mesh["C"].url], data_dir=b_dir, node_id=B_NODE, secrets=SECRETS, progress=updates.append
    )
    assert result["state"] == "installed" and result["pinned_by"] == "admin"
    assert all(
        filecmp.cmp(mesh["toy"] / f.name, b_dir / "models" / "Toy" / f.name, shallow=False)
        for f in mesh["toy"].iterdir()
    )
    served = {s.name: s.bytes for u in updates for s in u.suppliers}
    assert served[mesh["A"].url] > 0 and served[mesh["C"].url] > 0  # both peers served pieces


def test_a_unit_with_another_key_gets_nothing(mesh, b_dir):
    stranger = derive_mesh_secrets(parse_mesh_key(create_mesh_key()))
    with pytest.raises(LibraryError) as refused:
        install_from_peers("Toy", [mesh["A"].url], data_dir=b_dir, node_id=B_NODE, secrets=stranger)
    assert refused.value.code == "no_peer_has_model"
    with httpx.Client() as http:
        path = "/mesh/models/Toy/files/params_shard_0.bin"
        for headers in (
            {},
            {PEER_AUTH_HEADER: sign_peer_request(stranger, B_NODE, "GET", path, "bytes=0-9", now_ms=0)},
        ):
            response = http.get(mesh["A"].url + path, headers={"Range": "bytes=0-9", **headers})
            assert response.status_code == 403


def test_a_peer_serves_only_the_pieces_it_holds(mesh):
    path = "/mesh/models/Toy/files/params_shard_0.bin"
    with httpx.Client() as http:

        def ask(piece):
            rng = f"bytes={piece * PIECE}-{piece * PIECE + 9}"
            header = sign_peer_request(SECRETS, B_NODE, "GET", path, rng, now_ms=int(time.time() * 1000))
            return http.get(mesh["C"].url + path, headers={"Range": rng, PEER_AUTH_HEADER: header})

        held, missing = ask(0), ask(1)
        assert held.status_code == 206 and len(held.content) == 10
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "piece_not_held"


def test_a_replayed_signature_from_long_ago_is_refused(mesh):
    path = "/mesh/models/Toy/manifest"
    stale = sign_peer_request(SECRETS, B_NODE, "GET", path, "", now_ms=1_000)
    with httpx.Client() as http:
        response = http.get(mesh["A"].url + path, headers={PEER_AUTH_HEADER: stale})
    assert response.status_code == 403 and response.json()["error"]["code"] == "stale"


def test_a_fresh_signature_is_answered_once_and_a_replay_is_refused(mesh):
    path = "/mesh/models/Toy/manifest"
    header = sign_peer_request(SECRETS, B_NODE, "GET", path, "", now_ms=int(time.time() * 1000))
    with httpx.Client() as http:
        first = http.get(mesh["A"].url + path, headers={PEER_AUTH_HEADER: header})
        again = http.get(mesh["A"].url + path, headers={PEER_AUTH_HEADER: header})
    assert first.status_code == 200
    assert again.status_code == 403 and again.json()["error"]["code"] == "replay"


def test_an_oversized_offer_is_no_offer(b_dir):
    # A broken or hostile peer answers the manifest request with an endless body.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Endless(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                self.wfile.write(b'{"manifest": "' + b"x" * (64 * 1024 * 1024))
            except OSError:
                pass  # the asker hung up, as it should

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(LibraryError) as refused:
            install_from_peers(
                "Toy", [f"http://127.0.0.1:{server.server_port}"], data_dir=b_dir, node_id=B_NODE, secrets=SECRETS
            )
    finally:
        server.shutdown()
    assert refused.value.code == "no_peer_has_model"


def test_an_admin_install_job_takes_the_model_from_the_mesh(mesh, b_dir):
    from appliance.admin.start_install_jobs import start_install_jobs

    jobs = start_install_jobs(b_dir, B_NODE, find_peers=lambda model_id: [mesh["A"].url], load_secrets=lambda: SECRETS)
    jobs.start("Toy")
    deadline = time.monotonic() + 60
    while jobs.describe()["Toy"].state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jobs.describe()["Toy"].state == "installed"  # the source is gone: only the mesh could serve it
    assert LibraryModel.get_by_id("Toy").pinned_by == "admin"
