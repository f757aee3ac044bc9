"""`iplm mesh create`: start a new mesh with this unit in it, and print the key to carry to the others."""

from __future__ import annotations

import sys

from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.mesh_errors import MeshKeyError
from appliance.store.resolve_data_dir import resolve_data_dir


def run_mesh_create(args) -> int:
    """Create a mesh key, keep it (data dir, 0600) and print it; refuses to replace a key without --force."""
    data_dir = resolve_data_dir(args.data_dir)
    try:
        current = load_mesh_key(data_dir)
    except MeshKeyError:
        current = None  # a damaged key file: nothing worth keeping
    if current is not None and not getattr(args, "force", False):
        print(
            f"iplm: this unit is already in mesh {derive_mesh_secrets(current).mesh_id}; "
            "--force replaces its key (it leaves that mesh)",
            file=sys.stderr,
        )
        return 1
    key_text = create_mesh_key()
    store_mesh_key(data_dir, key_text)
    print(
        f"mesh {derive_mesh_secrets(parse_mesh_key(key_text)).mesh_id} created. Its key (keep it secret; "
        "give it to each unit that joins, with `iplm mesh join KEY`):"
    )
    print(key_text)
    print("Restart `iplm serve` for the unit to use it.", file=sys.stderr)
    return 0
