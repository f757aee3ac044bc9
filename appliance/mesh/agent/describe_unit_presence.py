"""Build this unit's presence payload from its store: models, the pieces it holds, memory and load."""

from __future__ import annotations

from appliance.library.list_models import list_models
from appliance.library.number_held_pieces import number_held_pieces
from appliance.mesh.pieces.encode_piece_set import encode_piece_set

_LOAD_KEYS = (
    "workers",
    "workers_ready",
    "slots_ready",
    "busy",
    "queued",
    "model",
    "start_in_s",
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
    "speed_age_s",
)


def _read_free_memory(meminfo_path: str) -> int:
    # MemAvailable, not MemFree: page cache (model files just read) is memory a new model can use.
    try:
        with open(meminfo_path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                fields = rest.split()
                if name == "MemAvailable" and fields and fields[0].isdigit():
                    return int(fields[0]) * 1024
    except OSError:
        pass
    return 0


def _describe_model(model: dict, node_id: str) -> dict:
    described = {
        "id": model["id"],
        "state": model["state"],
        "engine": model["engine"],
        "format": model["format"],
        "root": model["root_hash"],
        "size": model["size_bytes"],
    }
    if model["state"] == "partial":  # installed means every piece: nothing more to say
        described["pieces"] = encode_piece_set(*number_held_pieces(model["id"], node_id))
    return described


def describe_unit_presence(
    node_id: str, *, name: str, engine: str, device_class: str, load=None, meminfo_path: str = "/proc/meminfo"
) -> dict:
    """The unit's part of its presence: name, engine, device class, free memory, load, installed and partial models.

    Needs the unit's database open; `load` is the engine pool's describe_status(). The agent adds the rest.
    """
    models = [
        _describe_model(model, node_id) for model in list_models(node_id) if model["state"] in ("installed", "partial")
    ]
    load = {key: load[key] for key in _LOAD_KEYS if key in load} if isinstance(load, dict) else {}
    return {
        "name": name,
        "engine": engine,
        "device": device_class,
        "memory_free": _read_free_memory(meminfo_path),
        "load": load,
        "models": models,
    }
