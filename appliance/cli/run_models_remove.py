"""`iplm models remove ID`."""

from __future__ import annotations

import sys

from appliance.cli.open_unit_store import open_unit_store
from appliance.library.library_errors import LibraryError
from appliance.library.remove_model import remove_model


def run_models_remove(args) -> int:
    """Remove a model's files and records (its pin stays)."""
    data_dir, node_id = open_unit_store(args.data_dir)
    try:
        remove_model(args.model_id, data_dir=data_dir, node_id=node_id)
    except LibraryError as exc:
        print(f"iplm: {exc.message}", file=sys.stderr)
        return 1
    print(f"{args.model_id} removed")
    return 0
