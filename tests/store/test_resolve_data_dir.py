"""resolve_data_dir: --data-dir, else $IPLM_DATA, else $XDG_DATA_HOME/iplm, else ~/.local/share/iplm."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.store.resolve_data_dir import resolve_data_dir


@pytest.fixture(name="env")
def _clean_environment(monkeypatch, tmp_path):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("IPLM_DATA", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_default_is_under_the_home_directory(env, tmp_path):
    assert resolve_data_dir() == tmp_path / "home" / ".local" / "share" / "iplm"


def test_xdg_data_home_beats_the_default(env, tmp_path):
    env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

    assert resolve_data_dir() == tmp_path / "xdg" / "iplm"


@pytest.mark.parametrize("value", ["", "relative/share"])
def test_an_empty_or_relative_xdg_data_home_is_ignored(env, tmp_path, value):
    # The XDG spec: relative paths there are invalid; the data must not follow the working directory.
    env.setenv("XDG_DATA_HOME", value)

    assert resolve_data_dir() == tmp_path / "home" / ".local" / "share" / "iplm"


def test_iplm_data_beats_xdg(env, tmp_path):
    env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    env.setenv("IPLM_DATA", str(tmp_path / "unit"))

    assert resolve_data_dir() == tmp_path / "unit"


def test_iplm_data_is_expanded_and_made_absolute(env, tmp_path):
    env.setenv("IPLM_DATA", "~/iplm")
    assert resolve_data_dir() == tmp_path / "home" / "iplm"

    env.setenv("IPLM_DATA", "relative/data")
    assert resolve_data_dir() == tmp_path / "relative" / "data"


def test_an_empty_iplm_data_is_ignored(env, tmp_path):
    env.setenv("IPLM_DATA", "")

    assert resolve_data_dir() == tmp_path / "home" / ".local" / "share" / "iplm"


def test_explicit_data_dir_beats_everything(env, tmp_path):
    env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    env.setenv("IPLM_DATA", str(tmp_path / "unit"))

    assert resolve_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert resolve_data_dir("~/flag") == tmp_path / "home" / "flag"
    assert resolve_data_dir("here") == tmp_path / "here"
    assert resolve_data_dir("") == tmp_path / "unit"  # an empty flag is no flag


def test_the_result_is_always_absolute(env):
    assert isinstance(resolve_data_dir(), Path) and resolve_data_dir().is_absolute()
