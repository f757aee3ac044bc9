"""How the admin PIN is kept: never in clear, only a salted scrypt hash."""

from __future__ import annotations

import hashlib

# scrypt's memory cost makes guessing an 8-digit PIN from a stolen database slow even on a GPU.
_N, _R, _P = 2**14, 8, 1


def hash_admin_pin(pin: str, salt: bytes) -> str:
    """Hex scrypt hash of `pin` with `salt`."""
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32).hex()
