"""A chat's client is its device's address, never something the device sends."""

import pytest

from appliance.portal.name_chat_client import name_chat_client


@pytest.mark.parametrize(
    ("remote_addr", "client"),
    [
        ("198.18.0.23", "ip:198.18.0.23"),
        ("::ffff:198.18.0.23", "ip:198.18.0.23"),
        # On a LAN every device shares the /64: one address is one device.
        ("2001:db8:1:2:aaaa::1", "ip:2001:db8:1:2:aaaa::1"),
        ("fe80::1%wlan0", "ip:fe80::1"),
        (None, "unknown"),
        ("", "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_names(remote_addr, client):
    assert name_chat_client(remote_addr) == client
