"""`iplm mesh join KEY`: put this unit in the mesh whose key a person carried over."""

from __future__ import annotations

import sys

from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.key.store_mesh_key import store_mesh_key
from appliance.mesh.mesh_errors import MeshKeyError
from appliance.store.resolve_data_dir import resolve_data_dir


def run_mesh_join(args) -> int:
    """Check the key and keep it in the data dir (mode 0600); exit 2 when it is not a valid key.

    KEY "-" reads it from stdin, so that it stays out of the shell history and the process list.
    """
    text = (sys.stdin.readline() if args.key == "-" else args.key).strip()
    try:
        key = parse_mesh_key(text)
    except MeshKeyError as exc:
        print(f"iplm: not a mesh key: {exc.message}", file=sys.stderr)
        return 2
    store_mesh_key(resolve_data_dir(args.data_dir), text)
    print(f"joined mesh {derive_mesh_secrets(key).mesh_id}; restart `iplm serve` for the unit to use it")
    return 0
