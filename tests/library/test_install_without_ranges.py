"""Installing from sources that ignore Range: the real `python3 -m http.server`, and the test source made to.

Each file comes in one pass, its pieces verified as they pass; a corrupt copy on the source is told apart
from a download that broke, by the CLI's message and advice, and a broken one resumes.
"""

from __future__ import annotations

import contextlib
import filecmp
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import appliance.library.find_model_entry as find_model_entry_module
from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.install_model import install_model
from appliance.library.library_errors import InstallError
from appliance.library.library_types import ModelSource, WhitelistEntry
from appliance.library.whitelist import WHITELIST
from appliance.store.open_database import open_database
from appliance.store.store_models import HeldPiece, LibraryModel
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

ROOT = Path(__file__).resolve().parents[2]
PIECE = 64 * 1024
NODE = "0123456789abcdef"
SHARD = "params_shard_1.bin"
RESUMES = "run the same command again: it resumes where it stopped"
WILL_NOT_HELP = "installing again from this source will not help"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """An MLC directory of about 3.6 MB: 2 shards of ~28 pieces each at 64 KiB, and small config files."""
    return make_mlc_model_dir(tmp_path_factory.mktemp("toy") / "model", hidden_size=512, intermediate_size=1408)


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    open_database(data)
    return data


@contextlib.contextmanager
def _serve_directory(directory: Path, log: Path):
    """`python3 -m http.server` on 127.0.0.1 at a port it picks (read from what it prints); yields its URL."""
    with open(log, "wb") as requests_log:
        server = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(directory)],
            stdout=subprocess.PIPE,
            stderr=requests_log,
        )
        try:
            assert server.stdout is not None
            banner = server.stdout.readline().decode()
            port = re.search(r" port (\d+) ", banner)
            assert port, f"http.server did not start: {banner!r}"
            yield f"http://127.0.0.1:{port[1]}"
        finally:
            server.terminate()
            server.wait(timeout=30)


def _gets(log: Path, name: str) -> int:
    return sum(1 for line in log.read_text().splitlines() if f'"GET /{name} HTTP/1.1"' in line)


def _cli_install(data_dir: Path, model_id: str, *source: str, workers: int = 4) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "appliance.cli.main", "models", "install", model_id, "--data-dir", str(data_dir)]
    return subprocess.run(
        [*command, "--workers", str(workers), *source], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _same_files(model_dir: Path, original: Path) -> bool:
    return all(filecmp.cmp(original / p.name, model_dir / p.name, shallow=False) for p in original.iterdir())


def _held(model_id: str) -> set[tuple[str, int]]:
    return {(p.path, p.piece) for p in HeldPiece.select().where(HeldPiece.model == model_id)}


def _every_piece(manifest) -> set[tuple[str, int]]:
    return {(f.path, i) for f in manifest.files for i in range(len(f.pieces))}


def test_a_directory_served_by_python_http_server_installs_each_file_read_once(data_dir, toy, tmp_path):
    manifest = build_manifest(toy, piece_size=PIECE)
    log = tmp_path / "requests.log"
    with _serve_directory(toy, log) as url:
        add_model("Toy-Plain", manifest, ModelSource(kind="url", base=url))
        finished = _cli_install(data_dir, "Toy-Plain", "--url", url, workers=1)
    assert finished.returncode == 0, finished.stderr
    assert "installed" in finished.stdout and "%" in finished.stderr  # with progress
    assert _same_files(data_dir / "models" / "Toy-Plain", toy)
    # One worker: a range request answered with the whole file (left unread), then one pass per file.
    pieces = {f.path: len(f.pieces) for f in manifest.files}
    for shard in ("params_shard_0.bin", "params_shard_1.bin"):
        assert 1 <= _gets(log, shard) <= 2 < pieces[shard]


def test_a_first_install_from_python_http_server_pins_what_it_streamed(data_dir, toy, tmp_path, monkeypatch):
    with _serve_directory(toy, tmp_path / "requests.log") as url:
        entry = WhitelistEntry(
            id="Toy-Unpinned",
            format="mlc",
            engine="mlc",
            source=ModelSource(kind="url", base=url),
            size_bytes=3_600_000,
            license="",
            min_memory_bytes=0,
            boards=(),
            root_hash=None,
        )
        monkeypatch.setattr(find_model_entry_module, "WHITELIST", (*WHITELIST, entry))
        result = install_model("Toy-Unpinned", data_dir=data_dir, node_id=NODE, piece_size=PIECE, workers=4)
    assert result["state"] == "installed" and result["pinned_by"] == "first-install"
    assert result["root_hash"] == build_manifest(toy, piece_size=PIECE).root
    assert _same_files(data_dir / "models" / "Toy-Unpinned", toy)


def test_a_corrupt_copy_on_a_plain_server_is_named_and_every_good_piece_kept(data_dir, toy, tmp_path):
    manifest = build_manifest(toy, piece_size=PIECE)
    served = tmp_path / "served"
    shutil.copytree(toy, served)
    with open(served / SHARD, "r+b") as shard:  # one byte of piece 3 differs from the manifest's
        shard.seek(3 * PIECE + 10)
        byte = shard.read(1)
        shard.seek(3 * PIECE + 10)
        shard.write(bytes([byte[0] ^ 0xFF]))
    with _serve_directory(served, tmp_path / "requests.log") as url:
        add_model("Toy-Plain", manifest, ModelSource(kind="url", base=url))
        failed = _cli_install(data_dir, "Toy-Plain", "--url", url)
        assert failed.returncode == 1
        assert f"the source's copy of {SHARD} is corrupt (piece 3 does not match the manifest)" in failed.stderr
        assert WILL_NOT_HELP in failed.stderr and RESUMES not in failed.stderr
        assert _held("Toy-Plain") == _every_piece(manifest) - {(SHARD, 3)}
        assert LibraryModel.get_by_id("Toy-Plain").state == "partial"
        again = _cli_install(data_dir, "Toy-Plain", "--url", url)  # true: running it again does not help
        assert again.returncode == 1 and "is corrupt (piece 3 " in again.stderr
    # Another source brings the one missing piece; everything else was kept.
    repaired = _cli_install(data_dir, "Toy-Plain", "--from-dir", str(toy))
    assert repaired.returncode == 0, repaired.stderr
    assert _same_files(data_dir / "models" / "Toy-Plain", toy)


def test_a_plain_server_serving_a_file_of_another_length_is_refused(data_dir, toy, tmp_path):
    manifest = build_manifest(toy, piece_size=PIECE)
    served = tmp_path / "served"
    shutil.copytree(toy, served)
    size = (toy / SHARD).stat().st_size
    with open(served / SHARD, "ab") as shard:
        shard.write(b"extra bytes")
    with _serve_directory(served, tmp_path / "requests.log") as url:
        add_model("Toy-Plain", manifest, ModelSource(kind="url", base=url))
        refused = _cli_install(data_dir, "Toy-Plain", "--url", url)
    assert refused.returncode == 1
    assert f"/{SHARD}" in refused.stderr and f"{size + 11} bytes" in refused.stderr
    assert f"the manifest says {size}" in refused.stderr
    assert WILL_NOT_HELP in refused.stderr and RESUMES not in refused.stderr
    assert not any(path == SHARD for path, _ in _held("Toy-Plain"))
    assert LibraryModel.get_by_id("Toy-Plain").state == "partial"


def test_a_connection_dropped_mid_file_is_a_broken_download_and_a_rerun_resumes(data_dir, toy, tmp_path):
    manifest = build_manifest(toy, piece_size=PIECE)
    shutil.copytree(toy, tmp_path / "root" / "toy")
    with start_model_source(tmp_path / "root") as source:
        source.ignore_ranges()
        source.truncate(SHARD, 10 * PIECE + 5, times=1000)  # every pass over the shard breaks at the same byte
        url = f"{source.base_url}/toy"
        add_model("Toy-Plain", manifest, ModelSource(kind="url", base=url))
        broken = _cli_install(data_dir, "Toy-Plain", "--url", url, workers=1)
        assert broken.returncode == 1
        assert f"the download of {SHARD} from {url} broke off" in broken.stderr
        assert RESUMES in broken.stderr and WILL_NOT_HELP not in broken.stderr
        kept = _held("Toy-Plain")
        assert {(SHARD, i) for i in range(10)} <= kept  # what came before the break is verified and kept
        assert LibraryModel.get_by_id("Toy-Plain").state == "partial"
        source.truncate(SHARD, 0, times=0)  # the link is fine again
        resumed = _cli_install(data_dir, "Toy-Plain", "--url", url)
    assert resumed.returncode == 0, resumed.stderr
    assert _same_files(data_dir / "models" / "Toy-Plain", toy)


def test_a_cancelled_pass_keeps_what_it_verified_and_the_next_install_finishes(data_dir, toy, tmp_path):
    manifest = build_manifest(toy, piece_size=PIECE)
    shutil.copytree(toy, tmp_path / "root" / "toy")
    with start_model_source(tmp_path / "root") as source:
        source.ignore_ranges()
        source.rate_limit(1_000_000)  # a few seconds for the model: the pass is under way at the first report
        url = f"{source.base_url}/toy"
        add_model("Toy-Plain", manifest, ModelSource(kind="url", base=url))
        cancel = threading.Event()

        def cancel_once_some_are_held(update) -> None:
            if update.done_bytes > 0:
                cancel.set()

        with pytest.raises(InstallError) as stopped:
            install_model(
                "Toy-Plain", data_dir=data_dir, node_id=NODE, cancel=cancel, progress=cancel_once_some_are_held
            )
        assert stopped.value.code == "cancelled"
        assert 0 < len(_held("Toy-Plain")) < len(_every_piece(manifest))
        source.rate_limit(None)
        assert install_model("Toy-Plain", data_dir=data_dir, node_id=NODE)["state"] == "installed"
    assert _same_files(data_dir / "models" / "Toy-Plain", toy)
