"""A manifest a peer offers is judged by this unit's pin, the whitelist's published files, or the source."""

from __future__ import annotations

import hashlib

import pytest

import appliance.library.check_peer_manifests as check_peer_manifests_module
import appliance.library.find_model_entry as find_model_entry_module
from appliance.library.build_manifest import build_manifest
from appliance.library.check_peer_manifests import check_peer_manifests
from appliance.library.install_model import install_model
from appliance.library.library_errors import ManifestError
from appliance.library.library_types import ModelSource, SourceFile, WhitelistEntry
from appliance.library.remove_model import remove_model
from appliance.library.whitelist import WHITELIST
from appliance.store.open_database import open_database
from appliance.store.store_models import LibraryModel
from tests.library.model_source_server import start_model_source

NODE = "0123456789abcdef"
PIECE = 64 * 1024
GENUINE = b"GGUF" + bytes(range(256)) * 1200
ALTERED = GENUINE[:1000] + b"X" + GENUINE[1001:]  # same size, other content
OFFLINE = "http://127.0.0.1:9"  # nothing listens there


@pytest.fixture
def data_dir(tmp_path):
    open_database(tmp_path / "unit")
    return tmp_path / "unit"


def _manifest(tmp_path, content: bytes, name: str):
    (tmp_path / name).mkdir()
    (tmp_path / name / "pub.gguf").write_bytes(content)
    return build_manifest(tmp_path / name / "pub.gguf", piece_size=PIECE)


def _whitelist(monkeypatch, base: str, published: bool) -> None:
    entry = WhitelistEntry(
        id="Pub-GGUF",
        format="gguf",
        engine="llama.cpp",
        source=ModelSource(kind="hf", base=base, repo="test-org/Pub-GGUF"),
        size_bytes=len(GENUINE),
        license="",
        min_memory_bytes=0,
        boards=(),
        root_hash=None,
        files=("pub.gguf",),
        source_files=(SourceFile("pub.gguf", len(GENUINE), hashlib.sha256(GENUINE).hexdigest()),) if published else (),
    )
    monkeypatch.setattr(find_model_entry_module, "WHITELIST", (*WHITELIST, entry))


def _source(tmp_path, content: bytes):
    (tmp_path / "hf" / "test-org" / "Pub-GGUF").mkdir(parents=True)
    (tmp_path / "hf" / "test-org" / "Pub-GGUF" / "pub.gguf").write_bytes(content)
    return start_model_source(tmp_path / "hf")


def test_the_whitelists_published_files_judge_offline(data_dir, tmp_path, monkeypatch):
    _whitelist(monkeypatch, OFFLINE, published=True)
    genuine, altered = _manifest(tmp_path, GENUINE, "g"), _manifest(tmp_path, ALTERED, "a")
    good, bad = check_peer_manifests("Pub-GGUF", (genuine, altered))
    assert (good.verdict, good.pinned_by) == ("published", "whitelist")
    assert bad.verdict == "differs" and "pub.gguf" in bad.reason
    # install_model itself refuses it too, before fetching anything.
    with pytest.raises(ManifestError) as refused:
        install_model("Pub-GGUF", data_dir=data_dir, node_id=NODE, manifest=altered, vouched_by="mesh")
    assert refused.value.code == "source_mismatch"


def test_the_source_judges_by_its_lfs_sha256_or_cannot(data_dir, tmp_path, monkeypatch):
    genuine, altered = _manifest(tmp_path, GENUINE, "g"), _manifest(tmp_path, ALTERED, "a")
    monkeypatch.setattr(check_peer_manifests_module, "_MAX_HASHED_BYTES", 0)  # no file is hashed here
    with _source(tmp_path, GENUINE) as source:
        _whitelist(monkeypatch, source.base_url, published=False)
        # Sizes alone cannot tell content apart: no verdict either way.
        assert [c.verdict for c in check_peer_manifests("Pub-GGUF", (genuine, altered))] == ["unverifiable"] * 2
        source.lfs_min_bytes = 0
        assert [c.verdict for c in check_peer_manifests("Pub-GGUF", (genuine, altered))] == ["published", "differs"]
        assert not [r for r in source.requests if r[0] == "GET"]  # the headers said it all
    _whitelist(monkeypatch, OFFLINE, published=False)
    (offline,) = check_peer_manifests("Pub-GGUF", (altered,))
    assert offline.verdict == "unverifiable" and "cannot be reached" in offline.reason


def test_a_first_install_pin_is_kept_against_a_peers_manifest(data_dir, tmp_path, monkeypatch):
    with _source(tmp_path, GENUINE) as source:
        _whitelist(monkeypatch, source.base_url, published=False)
        first = install_model("Pub-GGUF", data_dir=data_dir, node_id=NODE, piece_size=PIECE)
    remove_model("Pub-GGUF", data_dir=data_dir, node_id=NODE)
    altered = _manifest(tmp_path, ALTERED, "a")
    (check,) = check_peer_manifests("Pub-GGUF", (altered,))
    assert check.verdict == "differs" and first["root_hash"] in check.reason
    with pytest.raises(ManifestError) as refused:
        install_model("Pub-GGUF", data_dir=data_dir, node_id=NODE, manifest=altered, vouched_by="mesh")
    assert refused.value.code == "peer_manifest_differs" and first["root_hash"] in refused.value.message
    row = LibraryModel.get_by_id("Pub-GGUF")
    assert (row.root_hash, row.pinned_by) == (first["root_hash"], "first-install")
