"""The admin group: cross-site and non-JSON requests (403/415), then PIN guessing from many addresses until
sign-in locks (429, then 423): no wrong PIN, and no right one after the lock, ever opens a session."""

from __future__ import annotations

import httpx

from benchmarks.hostile.hostile_types import OWNER_DEVICE, HostileUnit, Keepsake, Probe
from benchmarks.hostile.send_hostile_request import send_hostile_request

_EVIL = {"Origin": "http://evil.example"}
_FIRST_GUESSER = 20  # 127.0.0.20 on: one address after another, as many phones would
_MAX_GUESSERS = 60  # 3 free tries each: the unit-wide lock (100 wrong PINs) comes well before


def _client(unit: HostileUnit, device: int) -> httpx.Client:
    return httpx.Client(base_url=unit.url, timeout=30, transport=httpx.HTTPTransport(local_address=f"127.0.0.{device}"))


def _cross_site(unit: HostileUnit) -> list[Probe]:
    probes = []
    with _client(unit, OWNER_DEVICE) as owner, _client(unit, OWNER_DEVICE - 1) as stranger:
        signed_in = owner.post("/api/admin/session", json={"pin": unit.pin}).status_code == 200
        probes.append(Probe("the owner signs in", 200 if signed_in else None, signed_in))
        for http, who in ((stranger, "a stranger"), (owner, "the signed-in owner")):
            for label, method, path, kwargs, expect in (
                (
                    "sign-in from another site",
                    "POST",
                    "/api/admin/session",
                    {"json": {"pin": unit.pin}, "headers": _EVIL},
                    403,
                ),
                (
                    "sign-in as a form",
                    "POST",
                    "/api/admin/session",
                    {"content": f"pin={unit.pin}", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                    415,
                ),
                (
                    "sign-in as text/plain",
                    "POST",
                    "/api/admin/session",
                    {"content": f'{{"pin": "{unit.pin}"}}', "headers": {"Content-Type": "text/plain"}},
                    415,
                ),
                (
                    "default model from another site",
                    "PUT",
                    "/api/admin/default-model",
                    {"json": {"model": "x"}, "headers": _EVIL},
                    403,
                ),
                (
                    "install from another site",
                    "POST",
                    "/api/admin/models/hostile-corrupt/install",
                    {"json": {}, "headers": _EVIL},
                    403,
                ),
                (
                    "new PIN as text/plain",
                    "PUT",
                    "/api/admin/pin",
                    {"content": '{"current": "1", "new": "2"}', "headers": {"Content-Type": "text/plain"}},
                    415,
                ),
                (
                    "mesh join from another site",
                    "POST",
                    "/api/admin/mesh/join",
                    {"json": {"key": "x"}, "headers": _EVIL},
                    403,
                ),
            ):
                probes.append(send_hostile_request(http, f"{who}: {label}", method, path, expect=(expect,), **kwargs))
    return probes


def _guess(unit: HostileUnit) -> list[Probe]:
    probes = []
    locked = False
    for device in range(_FIRST_GUESSER, _FIRST_GUESSER + _MAX_GUESSERS):
        with _client(unit, device) as http:
            for attempt in range(4):  # the 4th comes too soon: 429
                guess = f"{(device * 7919 + attempt) % 10**8:08d}"
                if guess == unit.pin:
                    continue
                probe = send_hostile_request(
                    http, f"wrong PIN from 127.0.0.{device}", "POST", "/api/admin/session", json={"pin": guess}
                )
                probes.append(probe)
                locked = locked or probe.status == 423
        if locked:
            break
    probes.append(Probe("sign-in locked by the guessing", 423 if locked else None, locked))
    with _client(unit, _FIRST_GUESSER + _MAX_GUESSERS) as http:
        probes.append(
            send_hostile_request(
                http, "the right PIN once locked", "POST", "/api/admin/session", json={"pin": unit.pin}, expect=(423,)
            )
        )
    return probes


def probe_hostile_admin(unit: HostileUnit, keepsake: Keepsake) -> list[Probe]:
    """Cross-site requests first (they need the owner signed in), then the guessing, which locks sign-in for
    good (until `iplm admin reset-pin`): this group runs last."""
    return _cross_site(unit) + _guess(unit)
