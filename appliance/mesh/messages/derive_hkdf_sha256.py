"""HKDF-SHA256 (RFC 5869) with the standard library only."""

from __future__ import annotations

import hashlib
import hmac

_HASH_LEN = 32


def derive_hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """`length` bytes of HKDF-SHA256 output keying material (extract then expand)."""
    if not 0 < length <= 255 * _HASH_LEN:
        raise ValueError("HKDF-SHA256 yields 1 to 8160 bytes")
    prk = hmac.new(salt or bytes(_HASH_LEN), ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // _HASH_LEN) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]
