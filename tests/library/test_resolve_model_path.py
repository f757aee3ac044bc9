"""resolve_model_path: the safe join, with real symlinks in temporary directories."""

from __future__ import annotations

import os

import pytest

from appliance.library.library_errors import ManifestError
from appliance.library.resolve_model_path import resolve_model_path


@pytest.fixture(name="model_dir")
def _make_model_dir(tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "sub").mkdir(parents=True)
    (model_dir / "sub" / "file.bin").write_bytes(b"data")
    (model_dir / "top.json").write_text("{}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("secret")
    return model_dir


def test_joins_existing_and_future_paths(model_dir):
    assert resolve_model_path(model_dir, "top.json") == model_dir / "top.json"
    assert resolve_model_path(model_dir, "sub/file.bin") == model_dir / "sub" / "file.bin"
    assert resolve_model_path(model_dir, "new/dir/shard.bin") == model_dir / "new" / "dir" / "shard.bin"
    assert resolve_model_path(str(model_dir), "sub/new.bin") == model_dir / "sub" / "new.bin"


@pytest.mark.parametrize(
    "relative",
    ["", "/etc/passwd", "../outside/secret", "sub/../../outside", "a\\b", "C:x", "a\x00b", "sub/", ".iplm-partial/x"],
)
def test_refuses_bad_names(model_dir, relative):
    with pytest.raises(ManifestError):
        resolve_model_path(model_dir, relative)


def test_refuses_a_directory_link_that_escapes(model_dir):
    os.symlink(model_dir.parent / "outside", model_dir / "escape")

    with pytest.raises(ManifestError, match="escape.*symbolic link"):
        resolve_model_path(model_dir, "escape/secret")
    with pytest.raises(ManifestError, match="symbolic link"):
        resolve_model_path(model_dir, "escape/new-file")


def test_refuses_a_file_link_that_escapes(model_dir):
    os.symlink(model_dir.parent / "outside" / "secret", model_dir / "params_shard_0.bin")

    with pytest.raises(ManifestError, match="symbolic link"):
        resolve_model_path(model_dir, "params_shard_0.bin")


def test_refuses_links_that_stay_inside(model_dir):
    # Even a harmless link is refused: a later write through it would land on another manifest file.
    os.symlink("sub", model_dir / "alias")
    os.symlink("top.json", model_dir / "sub" / "copy.json")

    with pytest.raises(ManifestError, match="alias"):
        resolve_model_path(model_dir, "alias/file.bin")
    with pytest.raises(ManifestError, match="sub/copy.json"):
        resolve_model_path(model_dir, "sub/copy.json")


def test_refuses_a_dangling_link(model_dir):
    os.symlink(model_dir.parent / "nowhere", model_dir / "dangling.bin")

    with pytest.raises(ManifestError, match="symbolic link"):
        resolve_model_path(model_dir, "dangling.bin")


def test_a_linked_model_dir_itself_is_allowed(model_dir, tmp_path):
    # The data directory may live on another disk behind a link; only components of the path are checked.
    os.symlink(model_dir, tmp_path / "linked-model")

    linked = tmp_path / "linked-model"
    assert resolve_model_path(linked, "sub/file.bin") == linked / "sub" / "file.bin"
