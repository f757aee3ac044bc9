import pytest

from appliance.mesh.discovery.parse_peer_address import parse_peer_address


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10.0.0.5", ("10.0.0.5", 1883)),
        ("10.0.0.5:1884", ("10.0.0.5", 1884)),
        (" unit-b.local ", ("unit-b.local", 1883)),
        ("unit-b.local:2000", ("unit-b.local", 2000)),
        ("fe80::1", ("fe80::1", 1883)),
        ("[fe80::1]", ("fe80::1", 1883)),
        ("[fd00::1]:1999", ("fd00::1", 1999)),
    ],
)
def test_addresses_people_type(text, expected):
    assert parse_peer_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":1883",
        "host:",
        "host:0",
        "host:65536",
        "host:x",
        "[10.0.0.1]:1883",
        "[fe80::1]1883",
        "bad_host",
        "a b",
        "host;rm -rf",
        "[fe80::1",
    ],
)
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_peer_address(text)
