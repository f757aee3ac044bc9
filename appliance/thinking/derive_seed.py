"""A sampling seed per prompt and call: reproducible (the evaluation is), different for each call."""

from __future__ import annotations

import hashlib


def derive_seed(text: str, index: int) -> int:
    """A 32-bit seed from `text` and the call's `index`."""
    return int.from_bytes(hashlib.sha256(f"{index}:{text}".encode()).digest()[:4], "big")
