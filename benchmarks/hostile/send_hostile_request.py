"""Send one hostile HTTP request with httpx and judge the answer."""

from __future__ import annotations

import httpx

from benchmarks.hostile.hostile_types import Probe


def send_hostile_request(
    client: httpx.Client, label: str, method: str, path: str, *, expect: tuple[int, ...] = (), **kwargs
) -> Probe:
    """The unit's answer as a Probe: wanted is any 4xx or a dropped connection, or exactly one of `expect`."""
    try:
        status = client.request(method, path, **kwargs).status_code
    except httpx.TransportError as exc:  # closed on us: a drop (a dead unit shows in the checks after the group)
        return Probe(label, None, not expect, note=f"{exc.__class__.__name__}")
    wanted = status in expect if expect else 400 <= status < 500
    return Probe(label, status, wanted)
