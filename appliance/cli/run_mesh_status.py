"""`iplm mesh status`: the mesh as this unit's running agent sees it."""

from __future__ import annotations

import json
import sys
import time

from appliance.mesh.agent.mesh_agent_types import MESH_DIR, MESH_STATUS_FILE
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.mesh_errors import MeshKeyError
from appliance.store.resolve_data_dir import resolve_data_dir

# The agent rewrites the file at least every 30 s; older means it is not running.
_STALE_S = 90.0


def _ago(now: float, then) -> str:
    return f"{now - then:.0f} s ago" if isinstance(then, (int, float)) else "-"


def run_mesh_status(args) -> int:
    """Print the mesh id, the peers (state, address, models) and the broker links; --json for all of it."""
    data_dir = resolve_data_dir(args.data_dir)
    try:
        key = load_mesh_key(data_dir)
    except MeshKeyError as exc:
        print(f"iplm: the stored mesh key is damaged: {exc.message}", file=sys.stderr)
        return 1
    if key is None:
        print("this unit is in no mesh (`iplm mesh create` or `iplm mesh join KEY`)")
        return 1
    try:
        status = json.loads((data_dir / MESH_DIR / MESH_STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = None
    now = time.time()
    if status is None or now - status.get("updated_at", 0) > _STALE_S:
        print(f"mesh {derive_mesh_secrets(key).mesh_id}: the mesh agent is not running (start `iplm serve`)")
        return 1
    if getattr(args, "json", False):
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(f"mesh {status['mesh_id']}, this unit {status['node']}")
    print(f"{'node':18} {'name':16} {'state':7} {'via':22} {'seen':10} models")
    for node, peer in sorted(status["peers"].items()):
        presence = peer.get("presence", {})
        models = ", ".join(
            f"{m['id']}{'' if m['state'] == 'installed' else ' (partial)'}" for m in presence.get("models", [])
        )
        state = peer["state"] if peer["state"] == "online" else f"{peer['state']}:{peer.get('reason')}"
        print(
            f"{node:18} {str(presence.get('name', ''))[:16]:16} {state:7} {peer['via']:22} "
            f"{_ago(now, peer.get('last_seen')):10} {models}"
        )
    for address, link in sorted(status["links"].items()):
        print(f"link {address}: {link['state']} ({link['via']})")
    return 0
