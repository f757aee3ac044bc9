"""`iplm models manifest DIR`: run_models_manifest called with the arguments main.py's parser gives it."""

from __future__ import annotations

import argparse
import json
import os

from appliance.cli.run_models_manifest import run_models_manifest
from appliance.engine.locate_default_model import locate_default_model
from appliance.library.build_manifest import build_manifest
from appliance.library.parse_manifest import parse_manifest
from tests.engine.make_mlc_model_dir import make_mlc_model_dir

PIECE = 64 * 1024


def _args(model_dir, piece_size=None, output=None) -> argparse.Namespace:
    return argparse.Namespace(dir=str(model_dir), piece_size=piece_size, output=None if output is None else str(output))


def test_prints_the_manifest_as_json(tmp_path, capsys):
    model_dir = make_mlc_model_dir(tmp_path / "m")

    assert run_models_manifest(_args(model_dir, piece_size=PIECE)) == 0

    out, err = capsys.readouterr()
    assert parse_manifest(json.loads(out)) == build_manifest(model_dir, piece_size=PIECE)
    assert out.startswith('{\n  "version": 1,') and out.endswith("}\n")
    assert err == ""  # small model: no progress lines


def test_default_piece_size(tmp_path, capsys):
    assert run_models_manifest(_args(make_mlc_model_dir(tmp_path / "m"))) == 0

    assert json.loads(capsys.readouterr().out)["piece_size"] == 4 * 1024 * 1024


def test_writes_the_output_file_atomically(tmp_path, capsys):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    output = tmp_path / "out" / "manifest.json"
    output.parent.mkdir()
    output.write_text("old content")

    assert run_models_manifest(_args(model_dir, piece_size=PIECE, output=output)) == 0

    out, err = capsys.readouterr()
    assert out == ""
    assert parse_manifest(json.loads(output.read_text())) == build_manifest(model_dir, piece_size=PIECE)
    assert os.listdir(output.parent) == ["manifest.json"]  # no temporary file left behind
    assert "written to" in err and str(output) in err


def test_unwritable_output_fails_cleanly(tmp_path, capsys):
    model_dir = make_mlc_model_dir(tmp_path / "m")

    assert run_models_manifest(_args(model_dir, piece_size=PIECE, output=tmp_path / "absent" / "m.json")) == 1

    out, err = capsys.readouterr()
    assert out == "" and err.startswith("iplm: cannot write")


def test_invalid_model_dir_returns_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()

    assert run_models_manifest(_args(tmp_path / "empty")) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("iplm: ") and "is not a model" in err and err.count("\n") == 1


def test_symlink_in_model_dir_returns_2(tmp_path, capsys):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    os.symlink("/etc/hostname", model_dir / "tokenizer.model")

    assert run_models_manifest(_args(model_dir, piece_size=PIECE)) == 2

    assert capsys.readouterr().err == "iplm: 'tokenizer.model' is a symbolic link: copy the file in instead\n"


def test_missing_dir_and_bad_piece_size_return_2(tmp_path, capsys):
    assert run_models_manifest(_args(tmp_path / "absent")) == 2
    assert "no such file or directory" in capsys.readouterr().err

    assert run_models_manifest(_args(make_mlc_model_dir(tmp_path / "m"), piece_size=1000)) == 2
    assert "piece size 1000" in capsys.readouterr().err


def test_big_model_prints_progress(tmp_path, capsys):
    path = locate_default_model()  # ~94 MiB

    assert run_models_manifest(_args(path, output=tmp_path / "m.json")) == 0

    lines = capsys.readouterr().err.splitlines()
    total = path.stat().st_size // (1024 * 1024)
    assert lines[0] == f"hashing 0/{total} MiB"
    assert f"hashing 64/{total} MiB" in lines
    assert lines[-2] == f"hashing {total}/{total} MiB"
    assert json.loads((tmp_path / "m.json").read_text())["format"] == "gguf"
