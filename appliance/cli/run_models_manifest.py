"""`iplm models manifest DIR`: hash a model directory (or a .gguf file) and print or write its manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.library.build_manifest import build_manifest
from appliance.library.library_errors import ManifestError
from appliance.library.library_types import DEFAULT_PIECE_SIZE
from appliance.library.render_manifest import render_manifest
from appliance.write_file_atomically import write_file_atomically

_MIB = 1024 * 1024
# Below this, hashing takes well under a second: no progress lines.
_PROGRESS_FROM = 64 * _MIB


def _print_progress(done: int, total: int) -> None:
    if total >= _PROGRESS_FROM:
        print(f"hashing {done // _MIB}/{total // _MIB} MiB", file=sys.stderr, flush=True)


def run_models_manifest(args) -> int:
    """Build DIR's manifest; print it as JSON or write it to --output. 2 when DIR is not a valid model."""
    piece_size = DEFAULT_PIECE_SIZE if args.piece_size is None else args.piece_size
    try:
        manifest = build_manifest(args.dir, piece_size=piece_size, progress=_print_progress)
    except ManifestError as error:
        print(f"iplm: {error.message}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"iplm: {error.filename or args.dir}: {error.strerror or error}", file=sys.stderr)
        return 1
    text = json.dumps(render_manifest(manifest), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        write_file_atomically(Path(args.output), text)
    except OSError as error:
        print(f"iplm: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(
        f"manifest of {args.dir} ({manifest.format}, {len(manifest.files)} files, root {manifest.root}) "
        f"written to {args.output}",
        file=sys.stderr,
    )
    return 0
