"""`iplm first-boot`: identity, name and a PIN the owner can read without keyboard or monitor; runs once."""

from __future__ import annotations

import argparse
import os
import pwd

import pytest

import appliance.cli.run_first_boot as module
from appliance.admin.check_admin_pin import check_admin_pin
from appliance.store.open_database import open_database


def _make_args(tmp_path, **overrides) -> argparse.Namespace:
    values = {
        "data_dir": str(tmp_path / "data"),
        "owner": None,
        "pin_file": str(tmp_path / "boot" / "iplm-admin-pin.txt"),
        "set_hostname": True,
        "etc_dir": str(tmp_path / "etc"),
    }
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.fixture
def hostnames(monkeypatch):
    names: list[str] = []
    monkeypatch.setattr(module.socket, "sethostname", names.append)  # never rename the test machine
    return names


def test_first_boot_names_the_unit_and_shows_a_working_pin_once(tmp_path, capsys, hostnames):
    (tmp_path / "boot").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n")
    assert module.run_first_boot(_make_args(tmp_path)) == 0
    node_id = (tmp_path / "data" / "node_id").read_text().strip()
    name = f"iplm-{node_id[-4:]}"
    out = capsys.readouterr().out
    pin = out.split("the admin PIN is ")[1].split()[0]
    assert len(pin) == 8 and pin.isdigit()
    assert f"Admin PIN: {pin}\r\n" in (tmp_path / "boot" / "iplm-admin-pin.txt").read_bytes().decode()
    assert (tmp_path / "etc" / "hostname").read_text() == name + "\n" and hostnames == [name]
    assert (tmp_path / "etc" / "hosts").read_text() == f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
    database = open_database(tmp_path / "data")
    try:
        assert check_admin_pin(pin) and not check_admin_pin("00000000" if pin != "00000000" else "11111111")
    finally:
        database.close()
    assert (tmp_path / "data" / module.DONE_MARKER).exists()

    # Again (the marker removed by hand): the same identity, and the PIN the owner already has stays.
    assert module.run_first_boot(_make_args(tmp_path)) == 0
    assert (tmp_path / "data" / "node_id").read_text().strip() == node_id
    assert "made before" in capsys.readouterr().out
    database = open_database(tmp_path / "data")
    try:
        assert check_admin_pin(pin)
    finally:
        database.close()


def test_without_a_boot_partition_the_pin_is_still_shown(tmp_path, capsys, hostnames):
    assert module.run_first_boot(_make_args(tmp_path, set_hostname=False)) == 0
    assert "the admin PIN is " in capsys.readouterr().out
    assert not (tmp_path / "boot").exists() and hostnames == []


@pytest.mark.skipif(os.geteuid() != 0, reason="hands files to another user: needs root")
def test_the_data_dir_goes_to_the_service_user(tmp_path, hostnames):
    assert module.run_first_boot(_make_args(tmp_path, owner="nobody", set_hostname=False)) == 0
    nobody = pwd.getpwnam("nobody").pw_uid
    paths = [tmp_path / "data", *(tmp_path / "data").rglob("*")]
    assert {"node_id", "iplm.db", module.DONE_MARKER} <= {path.name for path in paths}
    assert all(path.lstat().st_uid == nobody for path in paths)


def test_an_unknown_owner_is_a_clear_error(tmp_path, capsys, hostnames):
    assert module.run_first_boot(_make_args(tmp_path, owner="no-such-user-iplm", set_hostname=False)) == 1
    assert "no user 'no-such-user-iplm'" in capsys.readouterr().err
