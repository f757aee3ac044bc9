import pytest

from appliance.admin.admin_types import PIN_SETTING
from appliance.admin.check_admin_pin import check_admin_pin
from appliance.admin.ensure_admin_pin import ensure_admin_pin
from appliance.admin.set_admin_pin import set_admin_pin
from appliance.store.open_database import open_database
from appliance.store.read_setting import read_setting
from appliance.store.write_setting import write_setting


@pytest.fixture(autouse=True)
def db(tmp_path):
    database = open_database(tmp_path)
    yield
    database.close()


def test_first_start_creates_an_eight_digit_pin_once():
    pin = ensure_admin_pin()
    assert pin is not None and len(pin) == 8 and pin.isdigit()
    assert ensure_admin_pin() is None  # not shown again
    assert check_admin_pin(pin)


def test_the_pin_is_stored_only_as_a_salted_hash():
    set_admin_pin("12345678")
    stored = read_setting(PIN_SETTING)
    assert "12345678" not in str(stored) and len(stored["salt"]) == 32 and len(stored["hash"]) == 64
    set_admin_pin("12345678")
    assert read_setting(PIN_SETTING)["salt"] != stored["salt"]  # same PIN, new salt, new hash


@pytest.mark.parametrize("guess", ["1234567", "123456789", "", None, 12345678, "12345678 ", "x" * 1000])
def test_wrong_pins_and_wrong_types_fail(guess):
    set_admin_pin("12345678")
    assert not check_admin_pin(guess)


@pytest.mark.parametrize("bad", ["123", "1234567", "1234567890123", "12a45678", "", None, 12345678, "１２３４５６７８"])
def test_only_8_to_12_ascii_digits_are_pins(bad):
    with pytest.raises(ValueError):
        set_admin_pin(bad)


def test_reset_replaces_the_pin():
    old = ensure_admin_pin()
    new = ensure_admin_pin(reset=True)
    assert check_admin_pin(new) and (old == new or not check_admin_pin(old))


def test_a_damaged_pin_record_fails_closed():
    write_setting(PIN_SETTING, {"salt": "zz", "hash": "00"})
    assert not check_admin_pin("12345678")
    write_setting(PIN_SETTING, "garbage")
    assert not check_admin_pin("12345678")
