"""`iplm models verify ID`: re-hash every piece on disk."""

from __future__ import annotations

import sys

from appliance.cli.open_unit_store import open_unit_store
from appliance.library.library_errors import LibraryError
from appliance.library.verify_model import verify_model


def run_models_verify(args) -> int:
    """0 when every piece is intact; 1 when some are bad (they are fetched again by the next install)."""
    data_dir, node_id = open_unit_store(args.data_dir)
    try:
        report = verify_model(args.model_id, data_dir=data_dir, node_id=node_id)
    except LibraryError as exc:
        print(f"iplm: {exc.message}", file=sys.stderr)
        return 1
    if report["bad_pieces"]:
        for path, index in report["bad_pieces"]:
            print(f"bad piece: {path} #{index}")
        print(
            f"{args.model_id}: {len(report['bad_pieces'])} of {report['checked_pieces']} pieces are bad; "
            f"it is now {report['state']}: `iplm models install {args.model_id}` fetches them again"
        )
        return 1
    print(f"{args.model_id}: all {report['checked_pieces']} pieces verified")
    return 0
