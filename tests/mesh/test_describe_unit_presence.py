"""The presence payload from the store: installed and partial models, held pieces in global numbering."""

import json

from appliance.mesh.agent.describe_unit_presence import describe_unit_presence
from appliance.mesh.agent.parse_presence import parse_presence
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message
from appliance.mesh.pieces.decode_piece_set import decode_piece_set
from appliance.store.open_database import open_database
from appliance.store.store_models import HeldPiece, LibraryModel, ModelFile

NODE, OTHER = "0123456789abcdef", "fedcba9876543210"
MIB = 1024 * 1024


def _meminfo(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       16000000 kB\nMemFree:          100000 kB\nMemAvailable:    8000000 kB\n")
    return str(path)


def test_partial_models_carry_their_held_pieces_and_installed_ones_do_not(tmp_path):
    open_database(tmp_path)
    LibraryModel.create(
        id="admin-model",
        format="mlc",
        engine="mlc",
        state="partial",
        root_hash="r" * 64,
        total_bytes=30 * MIB,
        piece_size=4 * MIB,
    )
    # Sorted by path: a.bin has 3 pieces (0-2), b.json 1 (3), c.bin 4 (4-7), empty.txt none.
    for path, size in (("c.bin", 16 * MIB), ("a.bin", 9 * MIB), ("empty.txt", 0), ("b.json", 100)):
        ModelFile.create(model="admin-model", path=path, size=size, sha256=None)
    for path, piece in (("a.bin", 0), ("a.bin", 1), ("b.json", 0), ("c.bin", 3)):
        HeldPiece.create(node_id=NODE, model="admin-model", path=path, piece=piece, sha256="s" * 64)
    HeldPiece.create(node_id=OTHER, model="admin-model", path="c.bin", piece=0, sha256="s" * 64)  # a peer's
    LibraryModel.create(
        id="done-model",
        format="gguf",
        engine="llama.cpp",
        state="installed",
        root_hash="d" * 64,
        total_bytes=5 * MIB,
        piece_size=4 * MIB,
    )
    presence = describe_unit_presence(
        NODE,
        name="unit-a",
        engine="llama.cpp",
        device_class="rk3588",
        load={"busy": 1, "queued": 2, "workers": 1, "load_error": None, "x": "y"},
        meminfo_path=_meminfo(tmp_path),
    )
    assert presence["name"] == "unit-a" and presence["device"] == "rk3588" and presence["engine"] == "llama.cpp"
    assert presence["memory_free"] == 8000000 * 1024
    assert presence["load"] == {"busy": 1, "queued": 2, "workers": 1}
    models = {model["id"]: model for model in presence["models"]}
    assert "available" not in {model["state"] for model in presence["models"]}
    partial = models["admin-model"]
    assert partial["state"] == "partial" and partial["root"] == "r" * 64
    assert decode_piece_set(partial["pieces"]) == (8, ((0, 2), (3, 4), (7, 8)))
    assert models["done-model"]["state"] == "installed" and "pieces" not in models["done-model"]
    # It is plain JSON that a sealed message carries.
    secrets = derive_mesh_secrets(MeshKey(secret=bytes(32)))
    seal_mesh_message(secrets, NODE, f"iplm/{secrets.mesh_id}/presence/{NODE}", presence, now=0, counter=1)
    assert json.loads(json.dumps(presence)) == presence


def test_unknown_memory_and_load_are_zero_and_empty(tmp_path):
    open_database(tmp_path)
    presence = describe_unit_presence(
        NODE, name="u", engine="mlc", device_class="jetson-orin", meminfo_path=str(tmp_path / "missing")
    )
    assert presence["memory_free"] == 0 and presence["load"] == {}


def test_the_pools_speed_and_wait_travel_in_the_presence_and_read_back(tmp_path):
    open_database(tmp_path)
    status = {
        "state": "ready",
        "workers": 1,
        "workers_ready": 1,
        "busy": 1,
        "queued": 0,
        "queue_limit": 8,
        "model": "smollm2-135m",
        "start_in_s": 9.5,
        "prefill_tokens_per_s": 181.3,
        "decode_tokens_per_s": 70.8,
        "speed_age_s": 3.2,
    }
    presence = describe_unit_presence(
        NODE, name="a", engine="llama.cpp", device_class="x", load=status, meminfo_path=_meminfo(tmp_path)
    )
    assert "state" not in presence["load"] and "queue_limit" not in presence["load"]
    load = parse_presence({**presence, "node": NODE}, NODE).load
    assert (load.model, load.start_in_s, load.decode_tokens_per_s, load.speed_age_s) == ("smollm2-135m", 9.5, 70.8, 3.2)
