"""A live unit whose admin added two models served by a loopback source: a toy MLC one, a GGUF copy."""

from __future__ import annotations

import shutil

from appliance.admin.set_admin_pin import set_admin_pin
from appliance.engine.default_model import DEFAULT_MODEL_FILE
from appliance.engine.locate_default_model import locate_default_model
from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.library_types import ModelSource
from appliance.store.open_database import open_database
from appliance.store.store_models import database
from tests.conftest import start_live_unit
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

PIN = "43214321"
TOY_REPO = "test-org/Toy-q4f16_1-MLC"
GGUF_REPO = "test-org/Smol-GGUF"


def start_admin_unit(source_dir, data_dir):
    """(live unit, its model source). Admin PIN: PIN. Models "Toy-MLC" (64 KiB pieces) and "Smol-Copy"."""
    toy = make_mlc_model_dir(source_dir / TOY_REPO, hidden_size=512, intermediate_size=1408)
    (source_dir / GGUF_REPO).mkdir(parents=True)
    shutil.copy(locate_default_model(), source_dir / GGUF_REPO / DEFAULT_MODEL_FILE)
    source = start_model_source(source_dir)
    open_database(data_dir)
    set_admin_pin(PIN)
    add_model(
        "Toy-MLC",
        build_manifest(toy, piece_size=64 * 1024),
        ModelSource(kind="hf", base=source.base_url, repo=TOY_REPO),
    )
    add_model(
        "Smol-Copy",
        build_manifest(source_dir / GGUF_REPO),
        ModelSource(kind="hf", base=source.base_url, repo=GGUF_REPO),
    )
    database.close()
    return start_live_unit(data_dir), source
