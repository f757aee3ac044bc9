"""`iplm models add ID --manifest FILE`: an admin makes a model installable by vouching for its manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.cli.choose_model_source import choose_model_source
from appliance.cli.open_unit_store import open_unit_store
from appliance.library.add_model import add_model
from appliance.library.library_errors import LibraryError
from appliance.library.parse_manifest import parse_manifest


def run_models_add(args) -> int:
    """Record the model with its manifest's root hash pinned; `iplm models install ID` then fetches it."""
    open_unit_store(args.data_dir)
    try:
        manifest = parse_manifest(json.loads(Path(args.manifest).read_text(encoding="utf-8")))
        added = add_model(args.model_id, manifest, choose_model_source(args, None))
    except LibraryError as exc:
        print(f"iplm: {exc.message}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested past the stack
        print(f"iplm: cannot read the manifest {args.manifest}: {exc}", file=sys.stderr)
        return 2
    print(
        f"{added['id']} added: {added['format']}, {added['total_bytes'] / 1e6:.1f} MB, root hash {added['root_hash']}"
    )
    return 0
