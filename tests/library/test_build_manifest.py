"""build_manifest on real-format MLC directories, GGUF files and refused directories."""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest

from appliance.engine.locate_default_model import locate_default_model
from appliance.hash_file import hash_file
from appliance.library.build_manifest import build_manifest
from appliance.library.hash_manifest import hash_manifest
from appliance.library.library_errors import ManifestError
from appliance.library.library_types import DEFAULT_PIECE_SIZE, ManifestFile
from tests.engine.make_mlc_model_dir import make_mlc_model_dir

KIB = 1024
PIECE = 64 * KIB
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _expect_file(path, data: bytes, piece_size: int = PIECE) -> ManifestFile:
    """The ManifestFile computed the obvious way, independently of build_manifest."""
    starts = range(0, len(data), piece_size)
    pieces = tuple(hashlib.sha256(data[start : start + piece_size]).hexdigest() for start in starts)
    return ManifestFile(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), pieces=pieces)


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _make_big_shard_dir(path, shard_size: int):
    """An MLC dir whose second shard spans several pieces; its record has no md5sum (that is optional)."""
    model_dir = make_mlc_model_dir(path)
    (model_dir / "params_shard_1.bin").write_bytes(_random_bytes(shard_size, 7))
    cache = json.loads((model_dir / "tensor-cache.json").read_text())
    cache["records"][1]["nbytes"] = shard_size
    del cache["records"][1]["md5sum"]
    (model_dir / "tensor-cache.json").write_text(json.dumps(cache, indent=4))
    return model_dir


# --- MLC ------------------------------------------------------------------------------------------


def test_mlc_dir_lists_every_file_with_its_hashes(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")

    manifest = build_manifest(model_dir, piece_size=PIECE)

    names = sorted(os.listdir(model_dir))
    assert manifest.format == "mlc" and manifest.piece_size == PIECE
    assert manifest.files == tuple(_expect_file(name, (model_dir / name).read_bytes()) for name in names)
    assert manifest.root == hash_manifest("mlc", PIECE, manifest.files)
    assert manifest.total_size == sum((model_dir / name).stat().st_size for name in names)


def test_root_is_deterministic_across_copies_and_runs(tmp_path):
    first = build_manifest(make_mlc_model_dir(tmp_path / "a"), piece_size=PIECE)
    second = build_manifest(make_mlc_model_dir(tmp_path / "b"), piece_size=PIECE)
    again = build_manifest(tmp_path / "a", piece_size=PIECE)

    assert first == second == again
    assert build_manifest(tmp_path / "a", piece_size=2 * PIECE).root != first.root


def test_one_changed_byte_changes_its_file_piece_and_root_only(tmp_path):
    model_dir = _make_big_shard_dir(tmp_path / "m", 3 * PIECE + 100)
    before = build_manifest(model_dir, piece_size=PIECE)
    shard = bytearray((model_dir / "params_shard_1.bin").read_bytes())
    shard[PIECE + 12345] ^= 0x01
    (model_dir / "params_shard_1.bin").write_bytes(bytes(shard))

    after = build_manifest(model_dir, piece_size=PIECE)

    changed = [(old.path, new.path) for old, new in zip(before.files, after.files, strict=True) if old != new]
    assert changed == [("params_shard_1.bin", "params_shard_1.bin")]
    old, new = (next(f for f in m.files if f.path == "params_shard_1.bin") for m in (before, after))
    assert old.size == new.size and old.sha256 != new.sha256
    assert [i for i, (a, b) in enumerate(zip(old.pieces, new.pieces, strict=True)) if a != b] == [1]
    assert len(old.pieces) == len(new.pieces) == 4
    assert after.root != before.root


def test_piece_boundaries_are_exact(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    exact, over, under = _random_bytes(3 * PIECE, 1), _random_bytes(2 * PIECE + 1, 2), _random_bytes(PIECE - 1, 3)
    (model_dir / "exact.bin").write_bytes(exact)
    (model_dir / "over.bin").write_bytes(over)
    (model_dir / "under.bin").write_bytes(under)
    (model_dir / "empty.txt").write_bytes(b"")

    files = {file.path: file for file in build_manifest(model_dir, piece_size=PIECE).files}

    assert files["exact.bin"] == _expect_file("exact.bin", exact) and len(files["exact.bin"].pieces) == 3
    assert files["over.bin"] == _expect_file("over.bin", over) and len(files["over.bin"].pieces) == 3
    assert files["over.bin"].pieces[-1] == hashlib.sha256(over[-1:]).hexdigest()
    assert files["under.bin"] == _expect_file("under.bin", under) and len(files["under.bin"].pieces) == 1
    assert files["empty.txt"] == ManifestFile(path="empty.txt", size=0, sha256=EMPTY_SHA256, pieces=())


def test_pieces_larger_than_the_read_block(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    data = _random_bytes(2 * 1024 * KIB + 5, 4)
    (model_dir / "weights.bin").write_bytes(data)

    files = {file.path: file for file in build_manifest(model_dir, piece_size=2 * 1024 * KIB).files}

    assert files["weights.bin"] == _expect_file("weights.bin", data, 2 * 1024 * KIB)
    assert len(files["weights.bin"].pieces) == 2


def test_subdirectories_are_walked_and_sorted_by_path(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    (model_dir / "extra" / "deep").mkdir(parents=True)
    (model_dir / "extra" / "deep" / "z.txt").write_text("z")
    (model_dir / "extra.txt").write_text("x")  # '.' sorts before '/'

    paths = [file.path for file in build_manifest(model_dir, piece_size=PIECE).files]

    assert paths == sorted(paths)
    assert "extra/deep/z.txt" in paths and paths.index("extra.txt") < paths.index("extra/deep/z.txt")


def test_compiled_libraries_and_hidden_entries_are_skipped(tmp_path):
    plain = build_manifest(make_mlc_model_dir(tmp_path / "plain"), piece_size=PIECE)
    model_dir = make_mlc_model_dir(tmp_path / "m")
    (model_dir / "Qwen-q4f16_1-cuda.so").write_bytes(b"\x7fELF")
    (model_dir / "lib").mkdir()
    (model_dir / "lib" / "model.dylib").write_bytes(b"mach-o")
    (model_dir / "MODEL.DLL").write_bytes(b"MZ")
    (model_dir / ".gitattributes").write_text("*.bin filter=lfs")
    (model_dir / ".iplm-partial").mkdir()
    (model_dir / ".iplm-partial" / "params_shard_0.bin").write_bytes(b"partial")
    os.symlink("/etc/passwd", model_dir / ".hidden-link")

    manifest = build_manifest(model_dir, piece_size=PIECE)

    assert manifest == plain


def test_a_tensor_cache_error_propagates(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    (model_dir / "params_shard_1.bin").unlink()

    with pytest.raises(ManifestError, match="params_shard_1.bin"):
        build_manifest(model_dir, piece_size=PIECE)


def test_ndarray_cache_name_is_accepted(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    (model_dir / "tensor-cache.json").rename(model_dir / "ndarray-cache.json")

    manifest = build_manifest(model_dir, piece_size=PIECE)

    assert manifest.format == "mlc" and "ndarray-cache.json" in [file.path for file in manifest.files]


# --- GGUF -----------------------------------------------------------------------------------------


def test_gguf_file_and_gguf_dir_give_the_same_manifest(tmp_path):
    data = b"GGUF" + _random_bytes(2 * PIECE + 10, 5)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.Q4_1.gguf").write_bytes(data)

    from_file = build_manifest(tmp_path / "model" / "tiny.Q4_1.gguf", piece_size=PIECE)
    from_dir = build_manifest(str(tmp_path / "model"), piece_size=PIECE)

    assert from_file == from_dir
    assert from_file.format == "gguf" and from_file.files == (_expect_file("tiny.Q4_1.gguf", data),)


def test_gguf_file_given_through_a_link_keeps_the_link_name(tmp_path):
    # Hugging Face's cache: snapshots/<rev>/model.gguf -> ../../blobs/<sha256>.
    data = _random_bytes(PIECE + 1, 6)
    (tmp_path / "blob").write_bytes(data)
    os.symlink(tmp_path / "blob", tmp_path / "model.gguf")

    manifest = build_manifest(tmp_path / "model.gguf", piece_size=PIECE)

    assert manifest.files == (_expect_file("model.gguf", data),)


def test_real_default_gguf_matches_sha256_and_reports_progress():
    path = locate_default_model()
    calls = []

    manifest = build_manifest(path, progress=lambda done, total: calls.append((done, total)))

    size = path.stat().st_size
    with open(path, "rb") as file:
        assert manifest.files[0].sha256 == hash_file(file)
    assert manifest.format == "gguf" and manifest.files[0].path == path.name and manifest.files[0].size == size
    assert len(manifest.files[0].pieces) == -(-size // DEFAULT_PIECE_SIZE)
    with open(path, "rb") as file:
        file.seek(DEFAULT_PIECE_SIZE)
        assert manifest.files[0].pieces[1] == hashlib.sha256(file.read(DEFAULT_PIECE_SIZE)).hexdigest()
    assert calls[0] == (0, size) and calls[-1] == (size, size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) <= size // (64 * 1024 * KIB) + 2


def test_small_models_report_only_start_and_end(tmp_path):
    calls = []
    manifest = build_manifest(
        make_mlc_model_dir(tmp_path / "m"), piece_size=PIECE, progress=lambda done, total: calls.append((done, total))
    )

    assert calls == [(0, manifest.total_size), (manifest.total_size, manifest.total_size)]


# --- refused --------------------------------------------------------------------------------------


def test_symlinked_file_is_refused_by_name(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    (tmp_path / "elsewhere.model").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere.model", model_dir / "tokenizer.model")

    with pytest.raises(ManifestError, match="'tokenizer.model' is a symbolic link"):
        build_manifest(model_dir, piece_size=PIECE)


def test_symlinked_directory_is_refused(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    (tmp_path / "other").mkdir()
    os.symlink(tmp_path / "other", model_dir / "extra")

    with pytest.raises(ManifestError, match="'extra' is a symbolic link"):
        build_manifest(model_dir, piece_size=PIECE)


def test_special_file_is_refused(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    os.mkfifo(model_dir / "pipe")

    with pytest.raises(ManifestError, match="'pipe' is not a regular file"):
        build_manifest(model_dir, piece_size=PIECE)


def test_unsafe_file_name_is_refused(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    (model_dir / "bad\\name.json").write_text("{}")

    with pytest.raises(ManifestError, match="backslash"):
        build_manifest(model_dir, piece_size=PIECE)


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"README.md": b"hello"},
        {"a.gguf": b"GGUF1", "b.gguf": b"GGUF2"},
        {"model.gguf": b"GGUF", "README.md": b"card"},
        {"model.safetensors": b"{}", "config.json": b"{}"},
        {"sub/model.gguf": b"GGUF"},
    ],
)
def test_unknown_directories_are_refused(tmp_path, files):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    for name, data in files.items():
        (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / name).write_bytes(data)

    with pytest.raises(ManifestError, match="is not a model"):
        build_manifest(model_dir, piece_size=PIECE)


def test_missing_path_and_non_gguf_file_are_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")

    with pytest.raises(ManifestError, match="no such file or directory"):
        build_manifest(tmp_path / "absent", piece_size=PIECE)
    with pytest.raises(ManifestError, match="not a .gguf file"):
        build_manifest(tmp_path / "weights.bin", piece_size=PIECE)


@pytest.mark.parametrize("piece_size", [0, 1000, 32 * KIB, 3 * PIECE, 128 * 1024 * KIB, True, 65536.0, "65536"])
def test_bad_piece_sizes_are_refused(tmp_path, piece_size):
    with pytest.raises(ManifestError, match="piece size"):
        build_manifest(make_mlc_model_dir(tmp_path / "m"), piece_size=piece_size)


def test_a_file_that_grows_while_hashed_is_refused(tmp_path):
    model_dir = make_mlc_model_dir(tmp_path / "m")

    def grow(done, total):
        # Called once the sizes are known, before the first byte is hashed.
        if done == 0:
            with open(model_dir / "tokenizer.json", "ab") as file:
                file.write(b" ")

    with pytest.raises(ManifestError, match="'tokenizer.json' changed size"):
        build_manifest(model_dir, piece_size=PIECE, progress=grow)
