"""The engine-start sequence for installed MLC models: kept library, or JIT-compile and keep."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import appliance.engine.mlc.open_installed_mlc_engine as module
from appliance.engine.engine_types import Engine, EngineError
from appliance.engine.mlc.choose_model_library import choose_model_library
from appliance.engine.mlc.probe_library_target import probe_library_target
from appliance.engine.probe_device import probe_device
from tests.engine.make_mlc_model_dir import make_mlc_model_dir

ELF = b"\x7fELF" + b"\x00" * 60


@pytest.fixture
def opened(monkeypatch):
    """A stand-in for open_mlc_engine that records the library it got and, without one, 'JIT-compiles'."""
    calls = []

    def fake_open(model_dir, *, model_id, device, model_lib, n_ctx, max_tokens, sequences):
        calls.append(model_lib)
        if model_lib is not None and Path(model_lib).read_bytes() != ELF + b"good":
            raise EngineError("engine_unavailable", "library does not load")
        if model_lib is None:  # what MLC's JIT does: compile into $MLC_LLM_HOME/model_lib/<hash>.so
            out = Path(os.environ["MLC_LLM_HOME"]) / "model_lib"
            out.mkdir(parents=True, exist_ok=True)
            (out / "0123abcd.so").write_bytes(ELF + b"good")
        return Engine(kind="mlc", model_id=model_id, n_ctx=n_ctx or 2048, stream_chat=None, close=lambda: None)

    monkeypatch.setattr(module, "open_mlc_engine", fake_open)
    monkeypatch.delenv("MLC_LLM_HOME", raising=False)
    return calls


def test_first_start_compiles_and_keeps_then_reuses(tmp_path, opened):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    data = tmp_path / "data"
    module.open_installed_mlc_engine(str(model_dir), data_dir=str(data), model_id="Toy", device="cuda")
    target = probe_library_target(probe_device(), device="cuda")
    kept = choose_model_library(str(data), "Toy", target, model_dir=str(model_dir))
    assert opened == [None] and kept is not None and Path(kept).read_bytes() == ELF + b"good"
    module.open_installed_mlc_engine(str(model_dir), data_dir=str(data), model_id="Toy", device="cuda")
    assert opened == [None, kept]  # the second start uses the kept library: no compile


def test_a_kept_library_that_fails_to_load_is_replaced_by_a_fresh_compile(tmp_path, opened):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    data = tmp_path / "data"
    module.open_installed_mlc_engine(str(model_dir), data_dir=str(data), model_id="Toy", device="cuda")
    target = probe_library_target(probe_device(), device="cuda")
    assert choose_model_library(str(data), "Toy", target, model_dir=str(model_dir)) is not None
    (Path(os.environ["MLC_LLM_HOME"]) / "model_lib" / "0123abcd.so").unlink()
    # Keep a library that passes the hash check but does not load (e.g. a driver update broke it).
    from appliance.engine.mlc.keep_model_library import keep_model_library

    bad = tmp_path / "bad.so"
    bad.write_bytes(ELF + b"bad!")
    keep_model_library(str(data), "Toy", target, bad, "prebuilt", model_dir=str(model_dir))
    opened.clear()
    module.open_installed_mlc_engine(str(model_dir), data_dir=str(data), model_id="Toy", device="cuda")
    assert opened[0] is not None and opened[1] is None
    assert Path(choose_model_library(str(data), "Toy", target, model_dir=str(model_dir))).read_bytes() == ELF + b"good"


def test_an_explicit_library_is_used_as_given(tmp_path, opened):
    model_dir = make_mlc_model_dir(tmp_path / "m")
    lib = tmp_path / "given.so"
    lib.write_bytes(ELF + b"bad!")
    with pytest.raises(EngineError):
        module.open_installed_mlc_engine(
            str(model_dir), data_dir=str(tmp_path / "d"), model_id="Toy", device="cuda", model_lib=str(lib)
        )
    assert opened == [str(lib)]  # no silent fallback when the admin named the library
