"""`iplm models list`: installed, partial and installable models."""

from __future__ import annotations

import json

from appliance.cli.open_unit_store import open_unit_store
from appliance.engine.list_runnable_engines import list_runnable_engines
from appliance.engine.probe_device import probe_device
from appliance.library.list_models import list_models


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def run_models_list(args) -> int:
    """Print one line per model (or JSON with --json)."""
    _, node_id = open_unit_store(args.data_dir)
    profile = probe_device()
    models = list_models(node_id, profile.memory_bytes, list_runnable_engines(profile))
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    print(f"{'model':44} {'state':10} {'size':>9}  {'fits':4}  pinned root hash")
    # fits "no": this unit cannot run it (another engine, or too little memory); it can still hold it for peers.
    for m in models:
        state = m["state"]
        if state == "partial" and m["size_bytes"]:
            state = f"{100 * m['done_bytes'] / m['size_bytes']:.0f}%"
        root = f"{m['root_hash'][:16]}… ({m['pinned_by']})" if m["root_hash"] else "unpinned (first install pins)"
        print(f"{m['id']:44} {state:10} {_size(m['size_bytes']):>9}  {'yes' if m['fits'] else 'no':4}  {root}")
    return 0
