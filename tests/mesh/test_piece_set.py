"""Piece sets in presence: ranges or a bitmap, whichever is shorter, and a careful reader."""

import base64
import json

import pytest

from appliance.mesh.pieces.decode_piece_set import decode_piece_set
from appliance.mesh.pieces.encode_piece_set import encode_piece_set


@pytest.mark.parametrize(
    "held, count",
    [
        ((), 0),
        ((), 10),
        (range(10), 10),
        ((0, 1, 2, 7, 8), 10),
        (range(0, 2000, 2), 2000),
        ((1999,), 2000),
        (range(5, 1995), 2000),
        ((0, 8, 9, 15, 16), 17),
    ],
)
def test_round_trip(held, count):
    encoded = encode_piece_set(held, count)
    decoded_count, ranges = decode_piece_set(json.loads(json.dumps(encoded)))
    assert decoded_count == count
    assert {i for start, stop in ranges for i in range(start, stop)} == set(held)


def test_runs_are_ranges_and_scattered_pieces_a_bitmap():
    assert encode_piece_set(range(100, 1900), 2000) == {"n": 2000, "ranges": [[100, 1900]]}
    scattered = encode_piece_set(range(0, 2000, 2), 2000)
    assert set(scattered) == {"n", "bitmap"}
    assert len(json.dumps(scattered)) < 400  # 2,000 pieces (8 GB at 4 MiB) in a few hundred bytes


def test_bitmap_bits_are_msb_first():
    assert decode_piece_set({"n": 16, "bitmap": base64.b64encode(b"\x80\x40").decode()}) == (16, ((0, 1), (9, 10)))


def test_overlapping_ranges_are_merged():
    assert decode_piece_set({"n": 10, "ranges": [[5, 8], [0, 2], [1, 3], [8, 9]]}) == (10, ((0, 3), (5, 9)))


@pytest.mark.parametrize("held, count", [((10,), 10), ((-1,), 10), ((), -1), ((), True)])
def test_encoding_refuses_bad_input(held, count):
    with pytest.raises(ValueError):
        encode_piece_set(held, count)


@pytest.mark.parametrize(
    "encoded",
    [
        None,
        {},
        {"n": -1, "ranges": []},
        {"n": True, "ranges": []},
        {"n": 10},
        {"n": 10, "ranges": [[0, 11]]},
        {"n": 10, "ranges": [[3, 3]]},
        {"n": 10, "ranges": [[0]]},
        {"n": 10, "ranges": [["0", 1]]},
        {"n": 10, "ranges": "0-9"},
        {"n": 16, "bitmap": "gA=="},  # one byte for 16 pieces
        {"n": 8, "bitmap": "not base64!"},
        {"n": 8, "bitmap": 5},
        {"n": 8, "ranges": [], "bitmap": "AA=="},
        {"n": 2**40, "ranges": [[0, 2**40]]},  # a claim too large to be a model
    ],
)
def test_decoding_refuses_malformed_sets(encoded):
    with pytest.raises(ValueError):
        decode_piece_set(encoded)
