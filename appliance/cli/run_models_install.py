"""`iplm models install ID`: fetch, verify, write, with a progress line; Ctrl-C stops (resumable)."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from appliance.cli.choose_model_source import choose_model_source
from appliance.cli.open_unit_store import open_unit_store
from appliance.engine.list_runnable_engines import list_runnable_engines
from appliance.engine.probe_device import probe_device
from appliance.library.advise_install_error import advise_install_error
from appliance.library.find_model_entry import find_model_entry
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import InstallProgress
from appliance.library.parse_manifest import parse_manifest


def _print_progress(update: InstallProgress, last: list) -> None:
    now = time.monotonic()
    if update.state == "downloading" and now - last[0] < 0.5:
        return
    last[0] = now
    total = update.total_bytes or 1
    eta = update.eta_s
    line = (
        f"\r{update.model}: {update.state} {100 * update.done_bytes / total:5.1f}% "
        f"{update.done_bytes / 1e6:.1f}/{total / 1e6:.1f} MB  {update.rate_bps / 1e6:.1f} MB/s"
        f"  ETA {'?' if eta is None else f'{eta:.0f}s'}"
    )
    if update.rejected_pieces:
        line += f"  ({update.rejected_pieces} bad pieces refetched)"
    print(line + "   ", end="", file=sys.stderr, flush=True)


def run_models_install(args) -> int:
    """Install a whitelisted or admin-added model; 0 installed, 1 failed (partial kept), 2 bad request."""
    data_dir, node_id = open_unit_store(args.data_dir)
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    last = [0.0]
    try:
        entry = find_model_entry(args.model_id)
        engines = list_runnable_engines(probe_device())
        if entry.engine not in engines:
            print(
                f"iplm: note: this unit runs {' and '.join(engines)}, not {entry.engine}: it will hold "
                f"{entry.id} (for the units of its mesh) but cannot serve it",
                file=sys.stderr,
            )
        manifest = parse_manifest(json.loads(Path(args.manifest).read_text())) if args.manifest else None
        result = install_model(
            args.model_id,
            data_dir=data_dir,
            node_id=node_id,
            source=choose_model_source(args, entry.source),
            manifest=manifest,
            workers=args.workers,
            cancel=cancel,
            progress=lambda update: _print_progress(update, last),
        )
    except LibraryError as exc:
        advice = advise_install_error(exc)
        print(f"\niplm: {exc.message}" + (f"\niplm: {advice}" if advice else ""), file=sys.stderr)
        return 2 if exc.code in ("model_unknown", "manifest_invalid") else 1
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested past the stack
        print(f"\niplm: cannot read the manifest: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print(f"{result['id']} installed; root hash {result['root_hash']} ({result['pinned_by']})")
    if result["pinned_by"] == "first-install":
        print("This model was not pinned before: this unit now accepts only this content for it.")
    return 0
