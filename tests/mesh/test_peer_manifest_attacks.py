"""Attacks on installs from the mesh, each shown to fail safely: a real `iplm serve` (A, honest) and hostile
"units" that hold the mesh key (so they sign requests and mint certificates) but serve other content.

B asks in-process. The model "Toy" is whitelisted here without a pin, unless a test pins it.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import appliance.library.find_model_entry as find_model_entry_module
from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ModelSource, WhitelistEntry
from appliance.library.remove_model import remove_model
from appliance.library.render_manifest import render_manifest
from appliance.library.whitelist import WHITELIST
from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request
from appliance.mesh.pieces.install_from_peers import install_from_peers
from appliance.mesh.pieces.sign_peer_answer import sign_peer_answer
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.store_models import LibraryModel, database
from tests.conftest import start_live_unit
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

pytestmark = pytest.mark.engine

REPO = "org/Toy"
PIECE = 64 * 1024
KEY = create_mesh_key()
SECRETS = derive_mesh_secrets(parse_mesh_key(KEY))
B_NODE = "00000000000000bb"
HOSTILE_NODE = "00000000000000e1"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """A (the genuine model, serving), the genuine files and an altered copy (same names and sizes)."""
    genuine_root, altered_root = tmp_path_factory.mktemp("genuine"), tmp_path_factory.mktemp("altered")
    toy = make_mlc_model_dir(genuine_root / REPO, hidden_size=512, intermediate_size=1408)
    altered = altered_root / REPO
    shutil.copytree(toy, altered)
    config = altered / "mlc-chat-config.json"  # what a hostile unit would change: how the model is run
    config.write_text(config.read_text().replace('"llama"', '"llamb"', 1))
    manifest = build_manifest(toy, piece_size=PIECE)
    a_dir = tmp_path_factory.mktemp("A")
    open_database(a_dir)
    with start_model_source(genuine_root) as source:
        add_model("Toy", manifest, ModelSource(kind="hf", base=source.base_url, repo=REPO))
        install_model("Toy", data_dir=a_dir, node_id=load_node_id(a_dir))
    store_mesh_key(a_dir, KEY)
    database.close()
    a = start_live_unit(a_dir)
    yield {
        "A": a,
        "a_node": load_node_id(a_dir),
        "genuine_root": genuine_root,
        "altered_root": altered_root,
        "toy": toy,
        "manifest": manifest,
        "altered": build_manifest(altered, piece_size=PIECE),
    }
    a.stop()


def _whitelist(monkeypatch, base_url: str) -> None:
    entry = WhitelistEntry(
        id="Toy",
        format="mlc",
        engine="mlc",
        source=ModelSource(kind="hf", base=base_url, repo=REPO),
        size_bytes=3_000_000,
        license="",
        min_memory_bytes=0,
        boards=(),
        root_hash=None,
    )
    monkeypatch.setattr(find_model_entry_module, "WHITELIST", (*WHITELIST, entry))


@pytest.fixture
def b_dir(tmp_path, monkeypatch):
    """B: in the mesh, "Toy" whitelisted unpinned, its source out of reach (the offline mesh)."""
    open_database(tmp_path)
    store_mesh_key(tmp_path, KEY)
    _whitelist(monkeypatch, "http://127.0.0.1:9")  # nothing listens on the discard port
    return tmp_path


def _answer(manifest, node: str) -> bytes:
    held = [[f.path, i] for f in manifest.files for i in range(len(f.pieces))]
    fields = {"model": "Toy", "node": node, "format": "mlc", "engine": "mlc", "root_hash": manifest.root}
    return json.dumps({**fields, "manifest": render_manifest(manifest), "held": held}).encode()


def _serve(answer) -> tuple[str, ThreadingHTTPServer]:
    """A hostile portal: `answer(request_signature) -> (body, headers)` for every manifest request."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if not self.path.endswith("/manifest"):
                self.send_error(404)  # it holds none of the pieces it offers
                return
            body, headers = answer(self.headers.get(PEER_AUTH_HEADER, ""))
            self.send_response(200)
            for name, value in {**headers, "Content-Type": "application/json"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


@pytest.fixture
def hostile(tmp_path_factory, mesh):
    """A member gone bad: its own certificate of the mesh, offering the altered content from 3 addresses."""
    identity = ensure_unit_identity(tmp_path_factory.mktemp("hostile"), HOSTILE_NODE, parse_mesh_key(KEY))
    body = _answer(mesh["altered"], HOSTILE_NODE)

    def answer(request_signature):
        return body, sign_peer_answer(
            identity, mesh_id=SECRETS.mesh_id, model_id="Toy", request_signature=request_signature, body=body
        )

    servers = [_serve(answer) for _ in range(3)]
    yield [url for url, _ in servers]
    for _, server in servers:
        server.shutdown()


def _install(b_dir, peers, **options):
    return install_from_peers("Toy", peers, data_dir=b_dir, node_id=B_NODE, secrets=SECRETS, **options)


def test_one_hostile_unit_with_many_addresses_does_not_outvote_an_honest_one(mesh, b_dir, hostile):
    for trust_mesh in (False, True):
        with pytest.raises(LibraryError) as refused:
            _install(b_dir, [*hostile, mesh["A"].url], trust_mesh=trust_mesh)
        # One vote each (per certificate, not per URL): a tie, which nothing here can break.
        assert refused.value.code == "peer_manifests_disagree"
        assert "1 unit)" in refused.value.message
    row = LibraryModel.get_or_none(LibraryModel.id == "Toy")
    assert row is None or (row.state != "installed" and not row.pinned_by)


def test_the_source_decides_between_disagreeing_units(mesh, b_dir, hostile, monkeypatch):
    with start_model_source(mesh["genuine_root"]) as source:
        source.lfs_min_bytes = 1024 * 1024  # the shards' SHA-256 come as Hugging Face's LFS headers
        _whitelist(monkeypatch, source.base_url)
        result = _install(b_dir, [*hostile, mesh["A"].url])
        shard_gets = [r for r in source.requests if r[0] == "GET" and "params_shard" in r[1]]
    assert result["state"] == "installed" and result["root_hash"] == mesh["manifest"].root
    assert result["pinned_by"] == "mesh"
    assert not shard_gets  # checked by their LFS SHA-256, and every piece came from A
    assert all(filecmp.cmp(f, b_dir / "models" / "Toy" / f.name, shallow=False) for f in mesh["toy"].iterdir())


def test_the_source_refuses_what_only_a_hostile_unit_offers(mesh, b_dir, hostile, monkeypatch):
    with start_model_source(mesh["genuine_root"]) as source:
        _whitelist(monkeypatch, source.base_url)
        with pytest.raises(LibraryError) as refused:
            _install(b_dir, hostile, trust_mesh=True)  # not even the admin's trust takes what the source denies
    assert refused.value.code == "peer_manifest_differs"
    assert "mlc-chat-config.json" in refused.value.message


def test_one_unit_alone_is_not_trusted_offline_unless_the_admin_says_so(mesh, b_dir):
    with pytest.raises(LibraryError) as refused:
        _install(b_dir, [mesh["A"].url])
    assert refused.value.code == "peer_manifest_unverified" and "trust_mesh" in refused.value.message
    result = _install(b_dir, [mesh["A"].url], trust_mesh=True)
    assert result["state"] == "installed" and result["pinned_by"] == "mesh"


def test_this_units_own_pin_wins_over_every_peer(mesh, b_dir, monkeypatch):
    # B first installed other content from a source (its first-install pin), then removed the files.
    with start_model_source(mesh["altered_root"]) as source:
        _whitelist(monkeypatch, source.base_url)
        first = install_model("Toy", data_dir=b_dir, node_id=B_NODE, piece_size=PIECE)
    assert first["pinned_by"] == "first-install" and first["root_hash"] == mesh["altered"].root
    remove_model("Toy", data_dir=b_dir, node_id=B_NODE)
    with pytest.raises(LibraryError) as refused:
        _install(b_dir, [mesh["A"].url], trust_mesh=True)
    assert refused.value.code == "peer_manifest_differs" and mesh["altered"].root in refused.value.message
    row = LibraryModel.get_by_id("Toy")
    assert (row.root_hash, row.pinned_by) == (mesh["altered"].root, "first-install")


def _capture_answer_of_a(mesh) -> tuple[bytes, dict]:
    path = "/mesh/models/Toy/manifest"
    header = sign_peer_request(SECRETS, "00000000000000cc", "GET", path, "", now_ms=int(time.time() * 1000))
    response = httpx.get(mesh["A"].url + path, headers={PEER_AUTH_HEADER: header})
    assert response.status_code == 200
    return response.content, {k: v for k, v in response.headers.items() if k.lower().startswith("x-iplm")}


@pytest.mark.parametrize("forgery", ["unsigned", "replayed", "impostor", "other_mesh"])
def test_answers_not_signed_by_the_unit_they_claim_for_this_request_are_not_counted(
    mesh, b_dir, tmp_path_factory, forgery
):
    genuine_body, genuine_headers = _capture_answer_of_a(mesh)
    other_key = parse_mesh_key(create_mesh_key()) if forgery == "other_mesh" else parse_mesh_key(KEY)
    identity = ensure_unit_identity(tmp_path_factory.mktemp("forger"), HOSTILE_NODE, other_key)

    def answer(request_signature):
        if forgery == "unsigned":
            return genuine_body, {}  # A's words, without A's signature
        if forgery == "replayed":
            return genuine_body, genuine_headers  # A's signature, for another request
        # The forger signs with its own certificate but says it is A (impostor), or is of another mesh.
        body = _answer(mesh["manifest"], mesh["a_node"] if forgery == "impostor" else HOSTILE_NODE)
        signer = {"mesh_id": SECRETS.mesh_id, "model_id": "Toy", "request_signature": request_signature}
        return body, sign_peer_answer(identity, body=body, **signer)

    urls, servers = zip(*[_serve(answer) for _ in range(2)], strict=True)
    try:
        with pytest.raises(LibraryError) as refused:
            _install(b_dir, list(urls), trust_mesh=True)
    finally:
        for server in servers:
            server.shutdown()
    assert refused.value.code == "no_peer_has_model"  # not one vote, whatever the admin trusts
