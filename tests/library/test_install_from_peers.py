"""Installing from several suppliers at once: peers first (what they hold), the source for the rest."""

from __future__ import annotations

import filecmp
import shutil

import pytest

from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ModelSource, PieceSupplier
from appliance.store.open_database import open_database
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

PIECE = 64 * 1024
REPO = "org/Toy"
NODE = "00000000000000aa"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_mlc_model_dir(tmp_path_factory.mktemp("toy") / "m", hidden_size=512, intermediate_size=1408)


@pytest.fixture
def servers(tmp_path, toy):
    """Three identical HTTP servers of the toy model's files: 'peers' p0, p1 and the origin."""
    started = []
    for name in ("p0", "p1", "origin"):
        shutil.copytree(toy, tmp_path / name / REPO)
        started.append(start_model_source(tmp_path / name))
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def setup(tmp_path, toy, servers):
    open_database(tmp_path / "data")
    manifest = build_manifest(toy, piece_size=PIECE)
    origin = servers[2]
    add_model("Toy", manifest, ModelSource(kind="hf", base=origin.base_url, repo=REPO))
    return manifest


def _peer(server, holds=None, name=""):
    return PieceSupplier(
        source=ModelSource(kind="url", base=server.base_url, repo=REPO),
        holds=frozenset(holds) if holds is not None else None,
        name=name or server.base_url,
    )


def _all_pieces(manifest):
    return {(f.path, i) for f in manifest.files for i in range(len(f.pieces))}


def _piece_gets(server):
    return [r for r in server.requests if r[0] == "GET" and r[2]]


def _requested_piece(request) -> tuple[str, int]:
    _, path, range_header = request
    return path.rsplit("/", 1)[1], int(range_header.split("=")[1].split("-")[0]) // PIECE


def _install(tmp_path, peers, **kwargs):
    updates = []
    result = install_model(
        "Toy", data_dir=tmp_path / "data", node_id=NODE, peers=tuple(peers), progress=updates.append, **kwargs
    )
    return result, updates


def _identical(tmp_path, toy):
    return all(
        filecmp.cmp(toy / f.name, tmp_path / "data" / "models" / "Toy" / f.name, shallow=False) for f in toy.iterdir()
    )


def test_two_full_peers_serve_everything_and_the_origin_nothing(tmp_path, toy, servers, setup):
    p0, p1, origin = servers
    all_pieces = _all_pieces(setup)
    result, _ = _install(tmp_path, [_peer(p0, all_pieces), _peer(p1, all_pieces)])
    assert result["state"] == "installed" and _identical(tmp_path, toy)
    assert _piece_gets(origin) == []
    assert _piece_gets(p0) and _piece_gets(p1)  # both peers were used at once


def test_a_partial_peer_serves_only_what_it_holds_and_the_origin_fills_in(tmp_path, toy, servers, setup):
    p0, _, origin = servers
    half = {piece for piece in _all_pieces(setup) if piece[1] % 2 == 0}
    result, _ = _install(tmp_path, [_peer(p0, half)])
    assert result["state"] == "installed" and _identical(tmp_path, toy)
    asked_peer = {_requested_piece(r) for r in _piece_gets(p0)}
    asked_origin = {_requested_piece(r) for r in _piece_gets(origin)}
    assert asked_peer <= half  # never asked for a piece it does not hold
    assert _all_pieces(setup) - half <= asked_origin  # the origin filled in the rest
    assert len(asked_peer) > len(half) // 2  # and the peer did serve what it has


def test_a_peer_serving_a_bad_piece_is_dropped_and_reported(tmp_path, toy, servers, setup):
    p0, p1, origin = servers
    all_pieces = _all_pieces(setup)
    only_bad_has = {("params_shard_1.bin", i) for i in range(8)}
    # Piece 3 of the shard is held by the bad peer alone: rarest first, it is asked for early, from it.
    p0.corrupt("params_shard_1.bin", 3 * PIECE + 10, times=100)
    result, updates = _install(tmp_path, [_peer(p0, all_pieces, "bad"), _peer(p1, all_pieces - only_bad_has, "good")])
    assert result["state"] == "installed" and _identical(tmp_path, toy)
    dropped = {s.name: s.dropped for u in updates for s in u.suppliers}
    assert dropped["bad"] and "verification" in dropped["bad"] and dropped["good"] is None
    assert max(u.rejected_pieces for u in updates) >= 1
    assert ("GET", f"/{REPO}/resolve/main/params_shard_1.bin") in {(m, p) for m, p, _ in origin.requests}


def test_the_faster_peer_serves_more(tmp_path, toy, servers, setup):
    p0, p1, _ = servers
    all_pieces = _all_pieces(setup)
    p0.rate_limit(4_000_000)
    p1.rate_limit(1_000_000)
    _install(tmp_path, [_peer(p0, all_pieces), _peer(p1, all_pieces)])
    fast, slow = len(_piece_gets(p0)), len(_piece_gets(p1))
    assert fast > 2 * slow > 0


def test_a_peer_that_vanishes_midway_is_dropped_and_others_finish(tmp_path, toy, servers, setup):
    p0, p1, _ = servers
    all_pieces = _all_pieces(setup)
    p0.vanish_after(500_000)
    result, updates = _install(tmp_path, [_peer(p0, all_pieces, "dies"), _peer(p1, all_pieces, "stays")])
    assert result["state"] == "installed" and _identical(tmp_path, toy)
    final = {s.name: s for s in next(u for u in reversed(updates) if u.suppliers).suppliers}
    # The vanished peer delivered nothing past the point it vanished (dropped, or simply not asked again
    # once the other peer proved faster); the peer that stayed was never dropped.
    assert final["dies"].dropped or final["dies"].bytes <= 500_000
    assert final["stays"].dropped is None and final["stays"].bytes > 0


def test_when_no_supplier_can_serve_a_piece_the_install_stays_partial(tmp_path, servers, setup):
    p0, _, origin = servers
    origin.vanish_after(0)
    half = {piece for piece in _all_pieces(setup) if piece[1] % 2 == 0}
    with pytest.raises(LibraryError):
        _install(tmp_path, [_peer(p0, half)])
    from appliance.store.store_models import HeldPiece, LibraryModel

    assert LibraryModel.get_by_id("Toy").state == "partial"
    assert {(h.path, h.piece) for h in HeldPiece.select()} <= half  # what the peer gave is kept


def test_a_peer_that_ignores_ranges_is_dropped_and_the_origin_serves_instead(tmp_path, toy, servers, setup):
    p0, _, origin = servers
    p0.ignore_ranges()  # a unit of the mesh always serves ranges: one that does not is broken
    result, updates = _install(tmp_path, [_peer(p0, _all_pieces(setup), "whole")], workers=1)
    assert result["state"] == "installed" and _identical(tmp_path, toy)
    dropped = {s.name: s.dropped for u in updates for s in u.suppliers}
    assert "ignores ranges" in dropped["whole"] and dropped[origin.base_url] is None
    final = {s.name: s for s in next(u for u in reversed(updates) if u.suppliers).suppliers}
    assert final["whole"].bytes < PIECE  # the small config file alone: whole is what was asked for it
    assert len(_piece_gets(origin)) >= len(_all_pieces(setup)) - 2


def test_an_origin_that_ignores_ranges_streams_what_the_peers_do_not_hold(tmp_path, toy, servers, setup):
    p0, _, origin = servers
    origin.ignore_ranges()
    shard = {("params_shard_1.bin", i) for i in range(8)}
    result, _ = _install(tmp_path, [_peer(p0, _all_pieces(setup) - shard)], workers=1)
    assert result["state"] == "installed" and _identical(tmp_path, toy)
    asked_peer = {_requested_piece(r) for r in _piece_gets(p0)}
    assert not asked_peer & shard and len(asked_peer) == len(_all_pieces(setup)) - len(shard)
    gets = [(path, asked) for method, path, asked in origin.requests if method == "GET"]
    assert {path for path, _ in gets} == {f"/{REPO}/resolve/main/params_shard_1.bin"}
    # Each worker's range request was answered with the whole file (and left unread); then one pass over the
    # shard, and for a piece that was in flight during the switch, at most one more that stops after it.
    workers = 2
    ranged = [asked for _, asked in gets if asked]
    assert 1 <= len(ranged) <= workers and 1 <= len(gets) - len(ranged) <= workers
