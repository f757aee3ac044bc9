"""The cookies group: garbage, oversized and forged phone and admin cookies never reach anyone's data."""

from __future__ import annotations

import hashlib
import secrets

import httpx

from benchmarks.hostile.hostile_types import HostileUnit, Keepsake, Probe
from benchmarks.hostile.send_hostile_request import send_hostile_request

_DEVICE = 12
_PHONE = "iplm_client"
_ADMIN = "iplm_admin"


def _forgeries(owner: str) -> dict[str, str]:
    """Cookie values another phone might try in place of the owner's: near misses, its hash, garbage."""
    flipped = ("0" if owner[0] != "0" else "1") + owner[1:]
    return {
        "garbage": "not-a-cookie",
        "empty": "",
        "control bytes": "\x01\x7f",
        "random (a forged id)": secrets.token_hex(16),
        "one digit changed (a rotated id)": flipped,
        "upper case": owner.upper(),
        "0x-prefixed": "0x" + owner[2:],
        "sign-prefixed": "-" + owner[1:],
        "the database's hash of it": hashlib.sha256(owner.encode()).hexdigest(),
        "too long": owner + "0",
        "8 KiB": "a" * 8192,
    }


def _raw_cookie(http: httpx.Client, label: str, method: str, path: str, cookie: str, **kwargs) -> Probe:
    # Set as a header: httpx's cookie jar would refuse some of these values.
    return send_hostile_request(http, label, method, path, headers={"Cookie": cookie}, **kwargs)


def probe_hostile_cookies(unit: HostileUnit, keepsake: Keepsake) -> list[Probe]:
    """Every forged phone cookie asks for, renames and deletes the keepsake conversation (404 each: never
    another phone's); oversized and countless cookies; forged admin cookies on the admin API (401)."""
    own = f"/api/conversations/{keepsake.conversation_id}"
    probes = []
    with httpx.Client(
        base_url=unit.url, timeout=30, transport=httpx.HTTPTransport(local_address=f"127.0.0.{_DEVICE}")
    ) as http:
        for name, value in _forgeries(keepsake.cookie).items():
            cookie = f"{_PHONE}={value}"
            probes.append(_raw_cookie(http, f"read with {name}", "GET", own, cookie))
            probes.append(_raw_cookie(http, f"rename with {name}", "PATCH", own, cookie, json={"title": "mine"}))
            probes.append(
                _raw_cookie(http, f"write with {name}", "POST", own + "/messages", cookie, json={"content": "hi"})
            )
            probes.append(_raw_cookie(http, f"delete with {name}", "DELETE", own, cookie))
        many = "; ".join(f"c{i}={i}" for i in range(1000)) + f"; {_PHONE}={secrets.token_hex(16)}"
        probes.append(_raw_cookie(http, "1000 cookies", "GET", own, many, expect=(404,)))
        probes.append(_raw_cookie(http, "a 20 KiB cookie", "GET", own, f"{_PHONE}={'a' * 20_000}", expect=(431,)))
        probes.append(
            _raw_cookie(
                http, "the id twice", "GET", own, f"{_PHONE}={secrets.token_hex(16)}; {_PHONE}=x", expect=(404,)
            )
        )
        for label, value in (
            ("forged admin session", secrets.token_hex(32)),
            ("admin cookie = the PIN", unit.pin),
            ("empty admin cookie", ""),
            ("8 KiB admin cookie", "f" * 8192),
        ):
            for method, path in (("GET", "/api/admin/models"), ("PUT", "/api/admin/default-model")):
                probes.append(
                    _raw_cookie(
                        http, f"{label}: {method} {path}", method, path, f"{_ADMIN}={value}", json={}, expect=(401,)
                    )
                )
    return probes
