"""render_manifest and parse_manifest: round trips, and every kind of malformed (untrusted) input."""

from __future__ import annotations

import copy
import json

import pytest

from appliance.library.build_manifest import build_manifest
from appliance.library.hash_manifest import hash_manifest
from appliance.library.library_errors import ManifestError
from appliance.library.library_types import Manifest, ManifestFile
from appliance.library.parse_manifest import parse_manifest
from appliance.library.render_manifest import render_manifest
from tests.engine.make_mlc_model_dir import make_mlc_model_dir

PIECE = 64 * 1024
H1, H2, H3, H4 = ("1" * 64, "2" * 64, "3" * 64, "4" * 64)


def _manifest(format: str, piece_size: int, files: list[ManifestFile]) -> Manifest:
    files = tuple(sorted(files, key=lambda file: file.path))
    return Manifest(format=format, piece_size=piece_size, files=files, root=hash_manifest(format, piece_size, files))


def _valid() -> dict:
    return render_manifest(
        _manifest(
            "mlc",
            PIECE,
            [
                ManifestFile(path="mlc-chat-config.json", size=10, sha256=H1, pieces=(H2,)),
                ManifestFile(path="params_shard_0.bin", size=2 * PIECE + 1, sha256=H3, pieces=(H1, H2, H4)),
                ManifestFile(path="sub/empty.txt", size=0, sha256=H4, pieces=()),
            ],
        )
    )


def _rehash(data: dict) -> dict:
    """Fix the root after a mutation, so that the check under test (not the root) is what fails."""
    files = [
        ManifestFile(path=f["path"], size=f["size"], sha256=f["sha256"], pieces=tuple(f["pieces"]))
        for f in data["files"]
    ]
    data["root"] = hash_manifest(data["format"], data["piece_size"], files)
    return data


# --- round trips ----------------------------------------------------------------------------------


def test_round_trip_of_a_built_mlc_manifest(tmp_path):
    manifest = build_manifest(make_mlc_model_dir(tmp_path / "m"), piece_size=PIECE)

    rendered = render_manifest(manifest)

    assert list(rendered) == ["version", "format", "piece_size", "files", "root"]
    assert rendered["root"] == manifest.root and rendered["version"] == 1
    assert parse_manifest(json.loads(json.dumps(rendered))) == manifest


def test_round_trip_of_a_gguf_manifest_with_an_empty_file():
    manifest = _manifest("gguf", 64 * 1024 * 1024, [ManifestFile(path="m.gguf", size=0, sha256=H1, pieces=())])

    assert parse_manifest(json.loads(json.dumps(render_manifest(manifest)))) == manifest


def test_files_come_back_sorted_by_path():
    data = _valid()
    data["files"].reverse()

    manifest = parse_manifest(data)

    assert [file.path for file in manifest.files] == ["mlc-chat-config.json", "params_shard_0.bin", "sub/empty.txt"]
    assert manifest.root == _valid()["root"]


@pytest.mark.parametrize("piece_size", [64 * 1024, 128 * 1024, 4 * 1024 * 1024, 64 * 1024 * 1024])
def test_piece_size_bounds_are_inclusive(piece_size):
    data = _valid()
    data["piece_size"] = piece_size
    count = -(-(2 * PIECE + 1) // piece_size)  # ceil
    data["files"][1]["pieces"] = data["files"][1]["pieces"][:count]

    assert parse_manifest(_rehash(data)).piece_size == piece_size


# --- malformed input ------------------------------------------------------------------------------


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def mutate(data):
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _delete(*keys):
    def mutate(data):
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


def _append_file(entry):
    return lambda data: data["files"].append(entry)


_FILE = {"path": "extra.bin", "size": 1, "sha256": H1, "pieces": [H2]}

MALFORMED = [
    ("missing version", _delete("version"), "lacks version"),
    ("unknown top key", _set("comment", "hi"), "unknown keys: comment"),
    ("version 2", _set("version", 2), "version 2 is not supported"),
    ("version string", _set("version", "1"), "version '1' is not supported"),
    ("version bool", _set("version", True), "version True is not supported"),
    ("version float", _set("version", 1.0), "version 1.0 is not supported"),
    ("format unknown", _set("format", "safetensors"), "format 'safetensors' is not one of mlc, gguf"),
    ("format not str", _set("format", ["mlc"]), "format"),
    ("piece_size bool", _set("piece_size", True), "piece_size must be an integer"),
    ("piece_size float", _set("piece_size", 65536.0), "piece_size must be an integer"),
    ("piece_size small", _set("piece_size", 32 * 1024), "not a power of two from 64 KiB to 64 MiB"),
    ("piece_size big", _set("piece_size", 128 * 1024 * 1024), "not a power of two"),
    ("piece_size odd", _set("piece_size", 3 * 64 * 1024), "not a power of two"),
    ("piece_size negative", _set("piece_size", -65536), "not a power of two"),
    ("files empty", _set("files", []), "files must be a non-empty list"),
    ("files object", _set("files", {}), "files must be a non-empty list"),
    ("file not object", _append_file(["extra.bin"]), "manifest file 3 is not an object"),
    ("file missing key", _delete("files", 0, "sha256"), "manifest file 0 lacks sha256"),
    ("file unknown key", _set("files", 0, "mode", 0o755), "manifest file 0 has unknown keys: mode"),
    ("path absolute", _set("files", 0, "path", "/etc/passwd"), "manifest file 0: path '/etc/passwd' is absolute"),
    ("path dotdot", _set("files", 1, "path", "../x"), "manifest file 1: path '../x' has a '..' component"),
    ("path backslash", _set("files", 1, "path", "a\\b"), "backslash"),
    ("path control", _set("files", 1, "path", "a\x00b"), "control character"),
    ("path drive", _set("files", 1, "path", "C:x"), "drive letter"),
    ("path trailing slash", _set("files", 1, "path", "dir/"), "empty component"),
    ("path hidden", _set("files", 1, "path", ".iplm-partial/x"), "hidden component"),
    ("path long", _set("files", 1, "path", "x" * 256), "255 bytes"),
    ("path not str", _set("files", 1, "path", 7), "path must be a string"),
    ("size bool", _set("files", 0, "size", True), "size must be an integer >= 0"),
    ("size negative", _set("files", 0, "size", -1), "size must be an integer >= 0"),
    ("size float", _set("files", 0, "size", 10.0), "size must be an integer >= 0"),
    ("sha256 upper", _set("files", 0, "sha256", "A" * 64), "sha256 must be 64 lowercase hex"),
    ("sha256 short", _set("files", 0, "sha256", "a" * 63), "sha256 must be 64 lowercase hex"),
    ("sha256 newline", _set("files", 0, "sha256", "a" * 64 + "\n"), "sha256 must be 64 lowercase hex"),
    ("sha256 not hex", _set("files", 0, "sha256", "g" * 64), "sha256 must be 64 lowercase hex"),
    ("pieces not list", _set("files", 0, "pieces", H2), "pieces must be a list"),
    ("pieces too few", _set("files", 1, "pieces", [H1, H2]), "2 pieces, but 131073 bytes make 3 of 65536"),
    ("pieces too many", _set("files", 1, "pieces", [H1, H2, H3, H4]), "4 pieces, but 131073 bytes make 3"),
    ("empty file with a piece", _set("files", 2, "pieces", [H1]), "1 pieces, but 0 bytes make 0"),
    ("piece not hex", _set("files", 1, "pieces", [H1, H2, "x" * 64]), "every piece must be 64 lowercase hex"),
    ("piece not str", _set("files", 1, "pieces", [H1, H2, None]), "every piece must be 64 lowercase hex"),
    ("duplicate path", _append_file(dict(_FILE, path="params_shard_0.bin")), "'params_shard_0.bin' more than once"),
    ("file is a directory", _append_file(dict(_FILE, path="sub/empty.txt/inner")), "'sub/empty.txt' both as a file"),
    ("deep directory clash", _append_file(dict(_FILE, path="sub")), "'sub' both as a file and as a directory"),
    ("compiled library", _append_file(dict(_FILE, path="lib/model-cuda.so")), "compiled library 'lib/model-cuda.so'"),
    ("mlc without config", _set("files", 0, "path", "config.json"), "mlc manifest has no mlc-chat-config.json"),
    ("gguf with three files", _set("format", "gguf"), "gguf manifest must list exactly one .gguf file"),
    ("missing root", _delete("root"), "lacks root"),
    ("root not hex", _set("root", "z" * 64), "root must be 64 lowercase hex"),
    ("root upper", _set("root", "A" * 64), "root must be 64 lowercase hex"),
    ("root not str", _set("root", None), "root must be 64 lowercase hex"),
]


@pytest.mark.parametrize("mutate, reason", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_manifests_are_refused_with_a_clear_message(mutate, reason):
    data = _valid()
    mutate(data)
    _rehash_if_possible(data)

    with pytest.raises(ManifestError) as caught:
        parse_manifest(data)

    assert reason in caught.value.message
    assert caught.value.code == "manifest_invalid"


def _rehash_if_possible(data: dict) -> None:
    # A correct root proves that the field check, not the root check, refused the manifest.
    try:
        if (
            "root" in data
            and isinstance(data["root"], str)
            and len(data["root"]) == 64
            and data["root"].islower()
            and all(c in "0123456789abcdef" for c in data["root"])
        ):
            _rehash(data)
    except (KeyError, TypeError, AttributeError):
        pass


@pytest.mark.parametrize("data", [None, [], "manifest", 1, json.dumps(_valid())])
def test_non_objects_are_refused(data):
    with pytest.raises(ManifestError, match="must be a JSON object"):
        parse_manifest(data)


def test_the_valid_base_parses():
    # Guards the table above: every case starts from a manifest that parses.
    assert parse_manifest(_valid()).format == "mlc"


# --- root -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        _set("root", "0" * 64),
        _set("files", 1, "pieces", 1, H3),
        _set("files", 0, "sha256", H4),
        _set("files", 0, "size", 11),
        _set("files", 2, "path", "sub/other.txt"),
        _set("piece_size", 128 * 1024),
        _delete("files", 2),
    ],
)
def test_tampering_gives_root_mismatch(tamper):
    data = _valid()
    tamper(data)
    if data["piece_size"] != PIECE:
        data["files"][1]["pieces"] = data["files"][1]["pieces"][:2]

    with pytest.raises(ManifestError) as caught:
        parse_manifest(data)

    assert caught.value.code == "root_mismatch"
    assert "does not match" in caught.value.message


def test_parse_does_not_modify_its_input():
    data = _valid()
    data["files"].reverse()
    before = copy.deepcopy(data)

    parse_manifest(data)

    assert data == before
