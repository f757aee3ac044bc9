"""check_tensor_cache against real-format MLC directories, broken in every way the check must catch."""

from __future__ import annotations

import json
import os

import pytest

from appliance.library.check_tensor_cache import check_tensor_cache
from appliance.library.library_errors import ManifestError
from tests.engine.make_mlc_model_dir import make_mlc_model_dir


def _sizes(model_dir) -> dict[str, int]:
    return {name: (model_dir / name).stat().st_size for name in os.listdir(model_dir) if (model_dir / name).is_file()}


def _edit_cache(model_dir, edit, name="tensor-cache.json"):
    cache = json.loads((model_dir / name).read_text())
    edit(cache)
    (model_dir / name).write_text(json.dumps(cache, indent=4))


def _check(model_dir):
    check_tensor_cache(model_dir, _sizes(model_dir))


@pytest.fixture(name="model_dir")
def _make_model_dir(tmp_path):
    return make_mlc_model_dir(tmp_path / "m")


def test_a_real_format_dir_passes(model_dir):
    assert check_tensor_cache(model_dir, _sizes(model_dir)) is None
    check_tensor_cache(str(model_dir), _sizes(model_dir))


def test_the_older_ndarray_cache_name_is_read(model_dir):
    (model_dir / "tensor-cache.json").rename(model_dir / "ndarray-cache.json")

    _check(model_dir)

    (model_dir / "params_shard_0.bin").write_bytes(b"short")
    with pytest.raises(ManifestError, match="ndarray-cache.json.*params_shard_0.bin"):
        _check(model_dir)


def test_tensor_cache_wins_over_ndarray_cache(model_dir):
    (model_dir / "ndarray-cache.json").write_text("not json")

    _check(model_dir)


def test_missing_cache_is_refused(model_dir):
    (model_dir / "tensor-cache.json").unlink()

    with pytest.raises(ManifestError, match="no tensor-cache.json"):
        _check(model_dir)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'"records"', "not a JSON object"),
        (b"{}", "no 'records' list"),
        (b'{"records": {}}', "no 'records' list"),
        (b'{"records": null}', "no 'records' list"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    ],
)
def test_malformed_cache_is_refused(model_dir, content, reason):
    (model_dir / "tensor-cache.json").write_bytes(content)

    with pytest.raises(ManifestError, match=reason):
        _check(model_dir)


@pytest.mark.parametrize(
    "record, reason",
    [
        ("params_shard_0.bin", "record 0 is not an object"),
        ({"nbytes": 1}, "no string 'dataPath'"),
        ({"dataPath": 5, "nbytes": 1}, "no string 'dataPath'"),
        ({"dataPath": "params_shard_0.bin"}, "no integer 'nbytes'"),
        ({"dataPath": "params_shard_0.bin", "nbytes": "23656"}, "no integer 'nbytes'"),
        ({"dataPath": "params_shard_0.bin", "nbytes": 23656.0}, "no integer 'nbytes'"),
        ({"dataPath": "params_shard_0.bin", "nbytes": True}, "no integer 'nbytes'"),
        ({"dataPath": "params_shard_0.bin", "nbytes": -1}, "no integer 'nbytes'"),
        ({"dataPath": "params_shard_0.bin", "nbytes": 23656, "md5sum": ""}, "malformed 'md5sum'"),
        ({"dataPath": "params_shard_0.bin", "nbytes": 23656, "md5sum": None}, "malformed 'md5sum'"),
        ({"dataPath": "params_shard_0.bin", "nbytes": 23656, "md5sum": "abc"}, "malformed 'md5sum'"),
    ],
)
def test_malformed_records_are_refused(model_dir, record, reason):
    _edit_cache(model_dir, lambda cache: cache["records"].__setitem__(0, record))

    with pytest.raises(ManifestError, match=reason):
        _check(model_dir)


def test_size_mismatch_is_refused(model_dir):
    _edit_cache(model_dir, lambda cache: cache["records"][1].__setitem__("nbytes", cache["records"][1]["nbytes"] + 1))

    with pytest.raises(ManifestError, match="'params_shard_1.bin' is 23424 bytes, the cache says 23425"):
        _check(model_dir)


def test_size_is_taken_from_the_files_given(model_dir):
    sizes = _sizes(model_dir) | {"params_shard_0.bin": 1}

    with pytest.raises(ManifestError, match="params_shard_0.bin"):
        check_tensor_cache(model_dir, sizes)


def test_missing_shard_is_refused(model_dir):
    (model_dir / "params_shard_1.bin").unlink()

    with pytest.raises(ManifestError, match="'params_shard_1.bin' is missing"):
        _check(model_dir)


def test_md5_mismatch_is_refused(model_dir):
    shard = bytearray((model_dir / "params_shard_1.bin").read_bytes())
    shard[100] ^= 0xFF
    (model_dir / "params_shard_1.bin").write_bytes(bytes(shard))

    with pytest.raises(ManifestError, match="'params_shard_1.bin' does not match its md5sum"):
        _check(model_dir)


def test_md5_is_checked_only_where_the_record_has_one(model_dir):
    _edit_cache(model_dir, lambda cache: cache["records"][1].pop("md5sum"))
    shard = bytearray((model_dir / "params_shard_1.bin").read_bytes())
    shard[100] ^= 0xFF
    (model_dir / "params_shard_1.bin").write_bytes(bytes(shard))

    _check(model_dir)


def test_upper_case_md5_is_accepted(model_dir):
    _edit_cache(model_dir, lambda cache: cache["records"][0].update(md5sum=cache["records"][0]["md5sum"].upper()))

    _check(model_dir)


def test_unreferenced_shard_is_refused(model_dir):
    (model_dir / "params_shard_2.bin").write_bytes(b"orphan")

    with pytest.raises(ManifestError, match="does not reference 'params_shard_2.bin'"):
        _check(model_dir)


def test_other_unreferenced_files_are_fine(model_dir):
    (model_dir / "README.md").write_text("card")
    (model_dir / "merges.txt").write_text("a b")

    _check(model_dir)


@pytest.mark.parametrize(
    "data_path",
    ["../outside.bin", "/etc/passwd", "sub/../params_shard_0.bin", "a\\b.bin", ".iplm-partial/params_shard_0.bin", ""],
)
def test_escaping_data_path_is_refused(model_dir, data_path):
    (model_dir.parent / "outside.bin").write_bytes(b"x" * 23656)
    _edit_cache(model_dir, lambda cache: cache["records"][0].__setitem__("dataPath", data_path))
    sizes = _sizes(model_dir) | {data_path: 23656}

    with pytest.raises(ManifestError, match="record 0 has a bad dataPath"):
        check_tensor_cache(model_dir, sizes)


def test_symlinked_data_path_is_refused(model_dir):
    (model_dir.parent / "outside.bin").write_bytes((model_dir / "params_shard_0.bin").read_bytes())
    (model_dir / "params_shard_0.bin").unlink()
    os.symlink(model_dir.parent / "outside.bin", model_dir / "params_shard_0.bin")

    with pytest.raises(ManifestError, match="symbolic link"):
        check_tensor_cache(model_dir, _sizes(model_dir))
