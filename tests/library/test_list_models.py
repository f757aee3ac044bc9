"""What the library lists, and whether each model fits this unit: its engine, then its memory."""

import pytest

from appliance.engine.device_profile import DeviceProfile
from appliance.engine.list_runnable_engines import list_runnable_engines
from appliance.library.list_models import list_models
from appliance.library.whitelist import WHITELIST
from appliance.store.open_database import open_database

NODE = "00000000000000cc"
GIB = 1024**3


@pytest.fixture(autouse=True)
def database(tmp_path):
    db = open_database(tmp_path)
    yield
    db.close()


def _by_id(**kwargs):
    return {m["id"]: m for m in list_models(NODE, **kwargs)}


def test_a_cpu_unit_fits_the_gguf_models_its_memory_holds_and_no_mlc_model():
    models = _by_id(memory_bytes=2 * GIB, engines=("llama.cpp",))
    mlc = [m for m in models.values() if m["engine"] == "mlc"]
    assert mlc and not any(m["runnable"] or m["fits"] for m in mlc)
    assert models["Qwen2.5-0.5B-Instruct-Q4_K_M"]["fits"] and models["SmolLM2-1.7B-Instruct-Q4_K_M"]["fits"] is False
    big = models["Llama-3.2-3B-Instruct-Q4_K_M"]
    assert big["runnable"] and not big["fits"] and big["min_memory_bytes"] > 2 * GIB


def test_a_gpu_unit_runs_both_engines():
    profile = DeviceProfile(
        board="jetson-orin",
        cpu_cores=8,
        memory_bytes=16 * GIB,
        gpu_kind="cuda",
        gpu_name="Orin",
        gpu_memory_bytes=16 * GIB,
        mlc_available=True,
    )
    engines = list_runnable_engines(profile)
    assert set(engines) == {"mlc", "llama.cpp"}
    assert all(m["fits"] for m in _by_id(memory_bytes=16 * GIB, engines=engines).values())
    no_mlc = DeviceProfile(
        board="rk3588",
        cpu_cores=8,
        memory_bytes=16 * GIB,
        gpu_kind="opencl",
        gpu_name="Mali",
        gpu_memory_bytes=16 * GIB,
        mlc_available=False,
    )
    assert list_runnable_engines(no_mlc) == ("llama.cpp",)


def test_unknown_memory_and_engines_count_as_enough():
    assert all(m["fits"] and m["runnable"] for m in _by_id().values())


def test_every_gguf_on_the_whitelist_is_one_published_file_whose_memory_covers_it():
    ggufs = [e for e in WHITELIST if e.format == "gguf" and e.source_files]
    assert len(ggufs) == 6
    for entry in ggufs:
        (published,) = entry.source_files
        assert entry.files == (published.path,) and published.path.endswith(".gguf")
        assert published.size == entry.size_bytes and len(published.sha256) == 64
        assert entry.engine == "llama.cpp" and entry.min_memory_bytes > entry.size_bytes
