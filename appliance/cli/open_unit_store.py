"""What every command that touches the unit's data needs first."""

from __future__ import annotations

from pathlib import Path

from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.resolve_data_dir import resolve_data_dir


def open_unit_store(data_dir_arg: str | None) -> tuple[Path, str]:
    """Open the data dir's database; return (data dir, this unit's node id)."""
    data_dir = resolve_data_dir(data_dir_arg)
    open_database(data_dir)
    return data_dir, load_node_id(data_dir)
