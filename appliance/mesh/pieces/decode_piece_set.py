"""Read a piece set from a peer's presence (encode_piece_set's output)."""

from __future__ import annotations

import base64
import binascii

# 2**24 pieces of 4 MiB are 64 TiB: far beyond any model, small enough to check in a moment.
_MAX_PIECES = 2**24


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_PIECES


def _read_ranges(raw, count: int) -> list[tuple[int, int]]:
    if not isinstance(raw, list):
        raise ValueError("ranges must be a list")
    ranges = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(_is_count(v) for v in item)
            or not item[0] < item[1] <= count
        ):
            raise ValueError(f"bad piece range {item!r}")
        ranges.append((item[0], item[1]))
    return ranges


def _read_bitmap(raw, count: int) -> list[tuple[int, int]]:
    try:
        bits = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
    except (binascii.Error, ValueError):
        bits = None
    if bits is None or len(bits) != (count + 7) // 8:
        raise ValueError("bad piece bitmap")
    ranges: list[tuple[int, int]] = []
    start = None
    for index in range(count + 1):
        held = index < count and bits[index >> 3] & (0x80 >> (index & 7))
        if held and start is None:
            start = index
        elif not held and start is not None:
            ranges.append((start, index))
            start = None
    return ranges


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for start, stop in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return tuple((start, stop) for start, stop in merged)


def decode_piece_set(encoded: dict) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(piece count, sorted disjoint half-open ranges of held pieces); ValueError when malformed."""
    # Ranges, not a set of ints: a peer's claim of millions of pieces must not cost millions of objects.
    if not isinstance(encoded, dict) or not _is_count(encoded.get("n")):
        raise ValueError("a piece set is {'n': count, 'ranges' | 'bitmap': ...}")
    count = encoded["n"]
    if set(encoded) == {"n", "ranges"}:
        return count, _merge(_read_ranges(encoded["ranges"], count))
    if set(encoded) == {"n", "bitmap"}:
        return count, _merge(_read_bitmap(encoded["bitmap"], count))
    raise ValueError("a piece set has either 'ranges' or 'bitmap'")
