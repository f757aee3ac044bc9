"""Read a presence (or last will) another unit sent, into a Presence: every field checked and bounded here, once."""

from __future__ import annotations

from appliance.mesh.agent.presence_types import MAX_SPEED_AGE_S, Presence, PresenceModel, UnitLoad
from appliance.mesh.pieces.decode_piece_set import decode_piece_set

_TEXT_LIMIT = 200  # a name, an address, a model id: enough for any real one, not a page of text
_MODEL_LIMIT = 256
_MODEL_STATES = ("installed", "partial")
_MAX_TOKENS_PER_S = 1e6  # far above any board's prefill; a bigger claim is not a measurement
_MAX_WAIT_S = 86400.0
_MAX_SLOTS = 256  # a claim of more parallel chats than this would only pull every split piece to one peer


def _text(value: object) -> str:
    return value[:_TEXT_LIMIT] if isinstance(value, str) else ""


def _count(value: object) -> int | None:
    # bool is an int to Python; a presence that says `"busy": true` says nothing.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _port(value: object) -> int | None:
    port = _count(value)
    return port if port is not None and 0 < port < 65536 else None


def _figure(value: object, high: float) -> float | None:
    # A finite number from 0 to `high`: nothing a peer sends may become an infinite or negative estimate.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= high:
        return float(value)
    return None


def _read_load(value: object) -> UnitLoad:
    load = value if isinstance(value, dict) else {}
    counts = {key: _count(load.get(key)) or 0 for key in ("workers", "workers_ready", "busy", "queued")}
    # A unit that does not say runs one chat per worker; no unit runs more than _MAX_SLOTS at once.
    slots = _count(load.get("slots_ready"))
    counts["slots_ready"] = min(_MAX_SLOTS, counts["workers_ready"] if slots is None else slots)
    age = _figure(load.get("speed_age_s"), MAX_SPEED_AGE_S)
    prefill = _figure(load.get("prefill_tokens_per_s"), _MAX_TOKENS_PER_S) if age is not None else None
    decode = _figure(load.get("decode_tokens_per_s"), _MAX_TOKENS_PER_S) if age is not None else None
    model = _text(load.get("model")) or None
    return UnitLoad(
        **counts,
        model=model,
        start_in_s=_figure(load.get("start_in_s"), _MAX_WAIT_S),
        prefill_tokens_per_s=prefill if prefill else None,  # 0 tokens/s would divide by zero downstream
        decode_tokens_per_s=decode if decode else None,
        speed_age_s=age if prefill or decode else None,
    )


def _read_pieces(value: object) -> dict | None:
    if not isinstance(value, dict):
        return None
    try:
        decode_piece_set(value)
    except (ValueError, TypeError):
        return None
    return value


def _read_models(value: object) -> tuple[PresenceModel, ...]:
    models = []
    for model in (value if isinstance(value, list) else [])[:_MODEL_LIMIT]:
        if not isinstance(model, dict) or not isinstance(model.get("id"), str) or not model["id"]:
            continue
        if model.get("state") not in _MODEL_STATES:
            continue
        root = model.get("root")
        models.append(
            PresenceModel(
                id=_text(model["id"]),
                state=model["state"],
                engine=_text(model.get("engine")),
                format=_text(model.get("format")),
                root=_text(root) or None if isinstance(root, str) else None,
                size=_count(model.get("size")) or 0,
                pieces=_read_pieces(model.get("pieces")) if model["state"] == "partial" else None,
            )
        )
    return tuple(models)


def parse_presence(payload: object, sender: str) -> Presence:
    """The Presence `sender` published; ValueError when it is no presence at all or speaks for another unit.

    Anything else malformed is dropped field by field: a unit that sends a bad load still shows as online.
    """
    if not isinstance(payload, dict):
        raise ValueError("a presence is a JSON object")
    node = payload.get("node", sender)
    if node != sender:
        raise ValueError(f"a presence from {sender} speaks for {node!r}")
    return Presence(
        node=sender,
        state="gone" if payload.get("state") == "gone" else "online",
        name=_text(payload.get("name")),
        engine=_text(payload.get("engine")),
        device=_text(payload.get("device")),
        memory_free=_count(payload.get("memory_free")),
        load=_read_load(payload.get("load")),
        models=_read_models(payload.get("models")),
        address=_text(payload.get("address")),
        broker=_port(payload.get("broker")),
        portal=_port(payload.get("portal")),
        will_id=_text(payload.get("will_id")),
        pieces_omitted=payload.get("pieces_omitted") is True,
    )
