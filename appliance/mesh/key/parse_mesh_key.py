"""Parse a mesh key a person typed, pasted or scanned."""

from __future__ import annotations

import base64
import hmac
import string

from appliance.mesh.key.compute_mesh_key_checksum import compute_mesh_key_checksum
from appliance.mesh.mesh_errors import MeshKeyError
from appliance.mesh.mesh_types import MESH_KEY_BYTES, MESH_KEY_CHECKSUM_BYTES, MESH_KEY_PREFIX, MeshKey

_ALPHABET = set(string.ascii_uppercase + "234567")
# 36 bytes (secret + checksum) are 288 bits: 58 base32 characters without padding.
_BODY_CHARS = -(-(MESH_KEY_BYTES + MESH_KEY_CHECKSUM_BYTES) * 8 // 5)


def parse_mesh_key(text: str) -> MeshKey:
    """The MeshKey in `text`; raises MeshKeyError (a ValueError) saying what is wrong with it."""
    if not isinstance(text, str):
        raise MeshKeyError("bad_prefix", "a mesh key is text that starts with 'iplm1-'")
    cleaned = text.strip()
    if not cleaned.lower().startswith(MESH_KEY_PREFIX):
        raise MeshKeyError(
            "bad_prefix",
            f"a mesh key starts with '{MESH_KEY_PREFIX}' (this one starts with {cleaned[: len(MESH_KEY_PREFIX)]!r})",
        )
    # People group long keys with spaces or dashes and change case; none of that is part of the key.
    body = "".join(ch for ch in cleaned[len(MESH_KEY_PREFIX) :] if ch not in " -\t\n").upper()
    wrong = sorted({ch for ch in body if ch not in _ALPHABET})
    if wrong:
        raise MeshKeyError(
            "bad_characters",
            f"a mesh key has only letters a-z and digits 2-7 after '{MESH_KEY_PREFIX}'; found {''.join(wrong)!r}",
        )
    if len(body) != _BODY_CHARS:
        raise MeshKeyError(
            "bad_length",
            f"a mesh key has {_BODY_CHARS} characters after "
            f"'{MESH_KEY_PREFIX}'; this one has {len(body)} (a character missing or extra?)",
        )
    raw = base64.b32decode(body + "=" * (-len(body) % 8))
    secret, checksum = raw[:MESH_KEY_BYTES], raw[MESH_KEY_BYTES:]
    if not hmac.compare_digest(checksum, compute_mesh_key_checksum(secret)):
        raise MeshKeyError(
            "bad_checksum", "this mesh key has a typo: its checksum does not match (check each character again)"
        )
    return MeshKey(secret=secret)
