"""`iplm probe`: what the device is and what the unit would run on it."""

from __future__ import annotations

import dataclasses
import json

from appliance.cli.apply_overrides import apply_overrides
from appliance.engine.probe_device import probe_device
from appliance.engine.recommend_settings import recommend_settings


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB" if size else "unknown"


def run_probe(args) -> int:
    """Print the device profile and the recommended engine, model, context size and max_tokens."""
    profile = probe_device()
    recommendation = apply_overrides(recommend_settings(profile), args)
    if args.json:
        print(
            json.dumps(
                {"device": dataclasses.asdict(profile), "recommendation": dataclasses.asdict(recommendation)}, indent=2
            )
        )
        return 0
    rows = [
        ("board", profile.board),
        ("cpu cores", str(profile.cpu_cores)),
        ("memory", _gib(profile.memory_bytes)),
        ("gpu", f"{profile.gpu_kind} {profile.gpu_name}".strip() if profile.gpu_kind != "none" else "none"),
        ("gpu memory", _gib(profile.gpu_memory_bytes)),
        ("mlc_llm", "installed" if profile.mlc_available else "not installed"),
        ("", ""),
        ("engine", f"{recommendation.engine} on {recommendation.device}"),
        ("model", recommendation.model_id),
        ("context size", f"{recommendation.n_ctx} tokens"),
        ("max_tokens", str(recommendation.max_tokens)),
        ("threads", str(recommendation.n_threads)),
        ("workers", str(recommendation.workers)),
        ("sequences", str(recommendation.sequences)),
        ("why", recommendation.reason),
    ]
    for name, value in rows:
        print(f"{name:>13}  {value}" if name else "")
    return 0
