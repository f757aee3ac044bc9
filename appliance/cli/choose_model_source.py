"""Where to install from, as the user said on the command line (default: the model's own source)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from appliance.library.library_types import ModelSource


def choose_model_source(args, default: ModelSource | None) -> ModelSource | None:
    """--from-dir DIR (a directory, a USB stick), --mirror BASE (Hugging Face layout), --url BASE (plain)."""
    if args.from_dir:
        return ModelSource(kind="dir", base=str(Path(args.from_dir).resolve()))
    if args.mirror:
        base = default if default is not None and default.kind == "hf" else ModelSource(kind="hf", base="")
        return dataclasses.replace(base, base=args.mirror)
    if args.url:
        return ModelSource(kind="url", base=args.url)
    return default
