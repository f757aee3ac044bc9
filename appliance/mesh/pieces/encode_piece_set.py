"""Encode which pieces of a model a unit holds, compactly enough to ride in every presence."""

from __future__ import annotations

import base64
import json


def _to_ranges(indices: list[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for index in indices:
        if ranges and ranges[-1][1] == index:
            ranges[-1][1] = index + 1
        else:
            ranges.append([index, index + 1])
    return ranges


def _to_bitmap(indices: list[int], count: int) -> str:
    bits = bytearray((count + 7) // 8)
    for index in indices:
        bits[index >> 3] |= 0x80 >> (index & 7)
    return base64.b64encode(bytes(bits)).decode("ascii")


def encode_piece_set(held, count: int) -> dict:
    """{"n": count, "ranges": [[start, stop), ...]} or {"n": count, "bitmap": base64}, whichever is shorter.

    `held`: piece indices (0 <= i < count) in the model's global numbering (decode_piece_set reads it).
    """
    # Installs fetch mostly in order, so held pieces are a few runs: ranges win. A scattered set (many
    # peers serving at once) costs at most count/8 bytes as a bitmap: 2,000 pieces (8 GB) -> 336 chars.
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("count must be a non-negative integer")
    indices = sorted(set(held))
    if indices and (indices[0] < 0 or indices[-1] >= count):
        raise ValueError(f"piece indices must lie in 0..{count - 1}")
    ranges = {"n": count, "ranges": _to_ranges(indices)}
    bitmap = {"n": count, "bitmap": _to_bitmap(indices, count)}
    return min(ranges, bitmap, key=lambda form: len(json.dumps(form, separators=(",", ":"))))
