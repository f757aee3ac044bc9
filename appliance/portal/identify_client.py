"""Anonymous phone identity: a random cookie; the database only sees its hash."""

from __future__ import annotations

import hashlib
import secrets

COOKIE_NAME = "iplm_client"
_COOKIE_BYTES = 16


def identify_client(cookie_value: str | None) -> tuple[str, str | None]:
    """Return (client_id, new cookie value or None).

    A missing or malformed cookie gets a fresh random one. client_id is a SHA-256 of the cookie, so a
    copy of the database does not hand out anyone's cookie.
    """
    fresh = None
    if not cookie_value or len(cookie_value) != 2 * _COOKIE_BYTES or not _is_hex(cookie_value):
        cookie_value = fresh = secrets.token_hex(_COOKIE_BYTES)
    return hashlib.sha256(cookie_value.encode("ascii")).hexdigest(), fresh


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
