"""load_node_id: created once, stable across starts, replaced when the file is not one."""

from __future__ import annotations

import re

import pytest

from appliance.store.load_node_id import load_node_id


def test_first_start_creates_the_id(tmp_path):
    data_dir = tmp_path / "fresh" / "unit"

    node_id = load_node_id(data_dir)

    assert re.fullmatch(r"[0-9a-f]{16}", node_id)
    assert (data_dir / "node_id").read_text(encoding="ascii") == node_id + "\n"
    assert sorted(p.name for p in data_dir.iterdir()) == ["node_id"]  # no temporary file left


def test_the_id_is_stable(tmp_path):
    first = load_node_id(tmp_path)

    assert load_node_id(tmp_path) == load_node_id(str(tmp_path)) == first


def test_units_get_different_ids(tmp_path):
    assert load_node_id(tmp_path / "a") != load_node_id(tmp_path / "b")


def test_an_existing_id_is_read_as_written(tmp_path):
    (tmp_path / "node_id").write_text("  0123456789abcdef \n")

    assert load_node_id(tmp_path) == "0123456789abcdef"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"not hex at all!!",
        b"0123456789abcde",
        b"0123456789abcdef0",
        b"0x123456789abcde",
        b"-123456789abcdef",
        b"+123456789abcdef",
        b"1234_5678_9abcde",
        b"01234567 89abcde",
        b"\xff\xfe0123456789abcd",
    ],
)
def test_a_corrupt_file_is_replaced(tmp_path, content):
    path = tmp_path / "node_id"
    path.write_bytes(content)

    node_id = load_node_id(tmp_path)

    assert re.fullmatch(r"[0-9a-f]{16}", node_id)
    assert path.read_text(encoding="ascii") == node_id + "\n"
    assert load_node_id(tmp_path) == node_id
