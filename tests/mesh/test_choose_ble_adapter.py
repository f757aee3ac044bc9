"""`iplm serve --ble-adapter`: off, a name, or auto (the kernel's lowest-numbered adapter)."""

import pytest

from appliance.mesh.discovery.choose_ble_adapter import choose_ble_adapter


def _sysfs(tmp_path, *entries):
    for entry in entries:
        (tmp_path / entry).mkdir()
    return tmp_path


def test_auto_takes_the_lowest_numbered_adapter_and_skips_connections(tmp_path):
    assert choose_ble_adapter("auto", _sysfs(tmp_path, "hci10", "hci2", "hci2:64", "rfkill3")) == "hci2"


def test_auto_without_an_adapter_or_without_bluetooth_is_none(tmp_path):
    assert choose_ble_adapter("auto", _sysfs(tmp_path)) is None
    assert choose_ble_adapter("auto", tmp_path / "absent") is None


def test_off_and_a_named_adapter_do_not_look(tmp_path):
    sysfs = _sysfs(tmp_path, "hci0")
    assert choose_ble_adapter("off", sysfs) is None
    assert choose_ble_adapter("hci1", sysfs) == "hci1"


@pytest.mark.parametrize("wanted", ["", "hci", "HCI0", "hci0/../x", "hci0 ", "/org/bluez/hci0", "hci12345"])
def test_anything_else_is_refused(tmp_path, wanted):
    with pytest.raises(ValueError, match="not a Bluetooth adapter"):
        choose_ble_adapter(wanted, tmp_path)
