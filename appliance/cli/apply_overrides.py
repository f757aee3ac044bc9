"""Apply the user's command-line overrides to the probe's recommendation."""

from __future__ import annotations

import dataclasses

from appliance.engine.device_profile import Recommendation


def apply_overrides(recommendation: Recommendation, args) -> Recommendation:
    """A copy of `recommendation` with every override the user gave."""
    changes = {
        "n_ctx": args.n_ctx,
        "max_tokens": args.max_tokens,
        "n_threads": args.threads,
        "workers": args.workers,
        "sequences": args.sequences,
    }
    return dataclasses.replace(recommendation, **{k: v for k, v in changes.items() if v is not None})
